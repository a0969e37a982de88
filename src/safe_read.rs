//! Reading one file that someone else controls (a file under `DOCS_DIR`, a
//! file in the GitHub cache, the conversation journal under `DATA_DIR`) so
//! that it can neither block the reader, nor
//! flood it, nor send it outside the folder it was found in.
//!
//! A walk chooses a file by its path; by the time it is read, the path may
//! name something else (a FIFO, a symlink to `/dev/zero` or to a file
//! outside the root, a folder on the way replaced by a symlink). So every
//! check is made on the opened handle, never by a second lookup of the path:
//!
//! - The open uses `O_NONBLOCK` (opening a FIFO that has no writer would
//!   otherwise wait forever; on regular files the flag changes nothing) and
//!   `O_NOFOLLOW` (a symlink swapped in as the last component fails to open).
//! - `File::metadata` (fstat on the handle) must say a regular file no larger
//!   than the limit and, when the caller knows it, the very file (device and
//!   inode) its walk saw. FIFOs, sockets and devices are never read.
//! - When the caller names a root, the kernel's own name for the handle
//!   (`/proc/self/fd/N` on Linux) must lie inside it. That name is where the
//!   opened file really is, whatever symlinks were on the way, so it also
//!   catches a folder on the way swapped for a symlink after the walk, which
//!   `O_NOFOLLOW` (last component only) cannot. Without `/proc` the read is
//!   refused: this is the check that makes a swap harmless. On other
//!   systems (macOS, the BSDs: no such name without `unsafe`) the identity
//!   check stands alone, and a folder swapped between the walk's listing and
//!   the open is not caught; the service is built and shipped for Linux.
//! - The read stops after limit + 1 bytes whatever fstat said (a file can
//!   grow while it is read): more than the limit is an error, not a cut.
//!
//! The flags come from std's `OpenOptionsExt::custom_flags` with each
//! platform's constants below; a Unix platform without them does not build.

use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// `O_NONBLOCK | O_NOFOLLOW` as each platform numbers them.
#[cfg(unix)]
const OPEN_FLAGS: i32 = {
    let linux = cfg!(any(target_os = "linux", target_os = "android"));
    if linux
        && cfg!(any(
            target_arch = "x86",
            target_arch = "x86_64",
            target_arch = "riscv32",
            target_arch = "riscv64",
            target_arch = "s390x",
            target_arch = "loongarch64"
        ))
    {
        0o4000 | 0o400000
    } else if linux
        && cfg!(any(
            target_arch = "arm",
            target_arch = "aarch64",
            target_arch = "powerpc",
            target_arch = "powerpc64"
        ))
    {
        0o4000 | 0o100000
    } else if linux && cfg!(any(target_arch = "mips", target_arch = "mips64")) {
        0o200 | 0o400000
    } else if cfg!(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    )) {
        0x4 | 0x100
    } else {
        panic!("add this platform's O_NONBLOCK and O_NOFOLLOW to docs/safe_read.rs")
    }
};

/// A file's identity: device and inode. Two paths naming the same identity
/// name the same file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// `None` where the platform has no device and inode numbers.
    pub fn of(meta: &Metadata) -> Option<FileId> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            None
        }
    }
}

/// What the opened file must be.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The most bytes it may have.
    pub limit: u64,
    /// A canonical folder it must lie inside.
    pub inside: Option<&'a Path>,
    /// The file a walk saw at this path.
    pub id: Option<FileId>,
}

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    /// The open failed; a symlink as the last component fails here.
    Open(io::Error),
    /// A FIFO, socket, device or folder, named by the article and noun.
    NotRegular(&'static str),
    TooLarge {
        limit: u64,
    },
    /// Another file than the one the walk saw.
    Replaced,
    /// The opened file is outside the root, at this real path.
    Outside(PathBuf),
    /// Where the opened file lies cannot be told (`/proc` missing).
    Unverifiable(io::Error),
    Read(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Open(e) => write!(f, "cannot open it: {e}"),
            ReadError::NotRegular(what) => write!(f, "not a regular file ({what})"),
            ReadError::TooLarge { limit } => write!(f, "over the {limit}-byte limit"),
            ReadError::Replaced => f.write_str("it was replaced since the folder was listed"),
            ReadError::Outside(real) => write!(f, "it is outside the root (at {})", real.display()),
            ReadError::Unverifiable(e) => write!(
                f,
                "cannot tell where it lies (/proc/self/fd: {e}); refusing to read it"
            ),
            ReadError::Read(e) => write!(f, "cannot read it: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Opens `path` for reading without blocking on a FIFO and without
/// following a symlink as its last component.
pub fn open(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(OPEN_FLAGS);
    }
    options.open(path)
}

/// The contents of the regular file at `path`, checked as the module doc
/// says. Reads at most `expect.limit + 1` bytes.
pub fn read(path: &Path, expect: Expect<'_>) -> Result<Vec<u8>, ReadError> {
    let file = open(path).map_err(ReadError::Open)?;
    let meta = file.metadata().map_err(ReadError::Read)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind(&meta)));
    }
    if expect.id.is_some() && FileId::of(&meta) != expect.id {
        return Err(ReadError::Replaced);
    }
    if let Some(root) = expect.inside {
        check_inside(&file, root)?;
    }
    if meta.len() > expect.limit {
        return Err(ReadError::TooLarge {
            limit: expect.limit,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    file.take(expect.limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Read)?;
    if bytes.len() as u64 > expect.limit {
        return Err(ReadError::TooLarge {
            limit: expect.limit,
        });
    }
    Ok(bytes)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn check_inside(file: &File, root: &Path) -> Result<(), ReadError> {
    use std::os::fd::AsRawFd;
    let real = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(ReadError::Unverifiable)?;
    if real.starts_with(root) {
        Ok(())
    } else {
        Err(ReadError::Outside(real))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn check_inside(_: &File, _: &Path) -> Result<(), ReadError> {
    Ok(())
}

fn kind(meta: &Metadata) -> &'static str {
    if meta.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    "something else"
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::time::Duration;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kv-safe-read-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::canonicalize(d).unwrap()
    }

    fn any() -> Expect<'static> {
        Expect {
            limit: 100,
            inside: None,
            id: None,
        }
    }

    #[test]
    fn regular_files_and_limits() {
        let d = dir("limits");
        fs::write(d.join("a.md"), b"hello").unwrap();
        fs::write(d.join("big.md"), vec![b'x'; 101]).unwrap();
        fs::write(d.join("edge.md"), vec![b'x'; 100]).unwrap();
        assert_eq!(read(&d.join("a.md"), any()).unwrap(), b"hello");
        assert_eq!(read(&d.join("edge.md"), any()).unwrap().len(), 100);
        assert!(matches!(
            read(&d.join("big.md"), any()),
            Err(ReadError::TooLarge { limit: 100 })
        ));
        assert!(matches!(
            read(&d, any()),
            Err(ReadError::NotRegular("a folder"))
        ));
        let inside = Expect {
            inside: Some(&d),
            ..any()
        };
        assert_eq!(read(&d.join("a.md"), inside).unwrap(), b"hello");
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn a_symlink_as_last_component_is_refused() {
        let d = dir("link");
        fs::write(d.join("a.md"), b"hello").unwrap();
        std::os::unix::fs::symlink(d.join("a.md"), d.join("l.md")).unwrap();
        let e = read(&d.join("l.md"), any()).unwrap_err();
        assert!(matches!(e, ReadError::Open(_)), "{e}");
        let _ = fs::remove_dir_all(d);
    }

    #[test]
    fn a_device_is_not_read() {
        let e = read(Path::new("/dev/zero"), any()).unwrap_err();
        assert!(matches!(e, ReadError::NotRegular("a device")), "{e}");
    }

    #[test]
    fn a_fifo_without_writer_does_not_block_the_open() {
        let d = dir("fifo");
        let fifo = d.join("pipe.md");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("mkfifo unavailable; skipped");
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read(&path, any()).map_err(|e| e.to_string()));
        });
        let got = rx.recv_timeout(Duration::from_secs(20));
        if got.is_err() {
            // Unblock the reader before failing.
            let _ = fs::write(&fifo, b"");
        }
        assert_eq!(
            got.expect("the open blocked on a FIFO"),
            Err("not a regular file (a FIFO)".to_string())
        );
        let _ = fs::remove_dir_all(d);
    }
}
