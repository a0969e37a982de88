//! `CLAUDE_DAILY_TOKEN_BUDGET`: Claude tokens (input and output, as each
//! stream reports them) spent per UTC day. Once spent, chats answer in
//! offline mode and say why, until midnight UTC. Kept in memory: a restart
//! starts the day's count again.

use crate::clock::unix_secs;
use crate::sync::lock;
use std::sync::Mutex;

pub struct DailyBudget {
    limit: u64,
    /// (day number since 1970, tokens spent that day)
    spent: Mutex<(u64, u64)>,
}

impl DailyBudget {
    pub fn new(limit: u64) -> DailyBudget {
        DailyBudget {
            limit,
            spent: Mutex::new((today(), 0)),
        }
    }

    pub fn spend(&self, tokens: u64) {
        let mut s = lock(&self.spent);
        roll(&mut s);
        s.1 = s.1.saturating_add(tokens);
    }

    pub fn exhausted(&self) -> bool {
        self.spent_today() >= self.limit
    }

    pub fn spent_today(&self) -> u64 {
        let mut s = lock(&self.spent);
        roll(&mut s);
        s.1
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}

fn today() -> u64 {
    unix_secs() / 86_400
}

fn roll(s: &mut (u64, u64)) {
    let day = today();
    if s.0 != day {
        *s = (day, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spending_reaches_the_limit() {
        let b = DailyBudget::new(100);
        assert!(!b.exhausted());
        b.spend(60);
        assert!(!b.exhausted());
        b.spend(40);
        assert!(b.exhausted());
        assert_eq!(b.spent_today(), 100);
        // A new day starts from zero.
        lock(&b.spent).0 -= 1;
        assert!(!b.exhausted());
    }
}
