//! Where records go: a file (the default), memory (tests, hosts that ship records themselves),
//! or a callback.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Receives whole records (one line each, newline included).
pub trait Sink: Send {
    /// Appends one record. An error stops the recording (and, by default, the session's new
    /// commands).
    fn write(&mut self, record: &[u8]) -> io::Result<()>;
    /// Makes what was written durable (writing out anything buffered first).
    fn sync(&mut self) -> io::Result<()>;
    /// Hands anything buffered to the operating system (no durability promise). The recorder
    /// calls it after each record outside a batch, and at the end of each batch.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Begins part `part` of the recording (rotation; the recorder has synced the part before).
    /// A sink without parts keeps writing, the default: the records say where a part begins.
    fn rotate(&mut self, part: u64) -> io::Result<()> {
        let _ = part;
        Ok(())
    }
}

/// A file, created new (an existing file is never overwritten or appended to). Part `n` of a
/// rotated recording goes to [`FileSink::part_path`].
#[derive(Debug)]
pub struct FileSink {
    file: File,
    base: PathBuf,
    path: PathBuf,
    /// Records not yet written: a batch (one session input's records) goes out in one write.
    pending: Vec<u8>,
}

/// A batch this large is written out without waiting for its end.
const PENDING_MAX: usize = 64 * 1024;

fn create_new(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

impl FileSink {
    /// Creates `path` (mode 0600 on Unix); fails if it exists.
    pub fn create(path: impl AsRef<Path>) -> io::Result<FileSink> {
        let path = path.as_ref().to_path_buf();
        Ok(FileSink {
            file: create_new(&path)?,
            base: path.clone(),
            path,
            pending: Vec::new(),
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where part `part` of the recording begun at `base` goes: `NAME.jsonl` is part 0,
    /// `NAME.1.jsonl` part 1, and so on.
    pub fn part_path(base: &Path, part: u64) -> PathBuf {
        if part == 0 {
            return base.to_path_buf();
        }
        let name = base
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match name.strip_suffix(".jsonl") {
            Some(stem) => format!("{stem}.{part}.jsonl"),
            None => format!("{name}.{part}"),
        };
        base.with_file_name(name)
    }
}

impl Sink for FileSink {
    fn write(&mut self, record: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(record);
        if self.pending.len() >= PENDING_MAX {
            return self.flush();
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // Whole records per write: a crash tears at most the last record written.
        let r = self.file.write_all(&self.pending);
        self.pending.clear();
        r
    }

    fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        self.file.sync_data()
    }

    fn rotate(&mut self, part: u64) -> io::Result<()> {
        self.flush()?;
        let path = FileSink::part_path(&self.base, part);
        self.file = create_new(&path)?;
        self.path = path;
        Ok(())
    }
}

/// Records kept in memory; clones share the buffer.
#[derive(Debug, Clone, Default)]
pub struct MemorySink(Arc<Mutex<Vec<u8>>>);

impl MemorySink {
    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl Sink for MemorySink {
    fn write(&mut self, record: &[u8]) -> io::Result<()> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("memory sink poisoned"))?
            .extend_from_slice(record);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hands each record to a function (a host shipping records to its own store); `sync` is a
/// no-op unless the host's function makes every record durable itself.
pub struct CallbackSink<F>(pub F);

impl<F: FnMut(&[u8]) -> io::Result<()> + Send> Sink for CallbackSink<F> {
    fn write(&mut self, record: &[u8]) -> io::Result<()> {
        (self.0)(record)
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<F> std::fmt::Debug for CallbackSink<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackSink(..)")
    }
}
