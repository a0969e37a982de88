#![forbid(unsafe_code)]

fn main() {
    let _ = knowledge_vault::config::Config::from_env();
}
