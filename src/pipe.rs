//! Reading ahead and writing behind on threads of their own, so the CLI's file I/O overlaps the
//! cipher: `put` reads the next block while it seals this one and the previous one is being written.
//! Memory stays bounded: each side holds at most [`DEPTH`] blocks in flight plus the one in hand.

use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

/// Bytes per block handed between threads.
const BLOCK: usize = 1 << 20;
/// Blocks queued between a thread and the caller.
const DEPTH: usize = 1;

/// A [`BufRead`] over `src`, read on a scoped thread one block ahead.
pub struct ReadAhead {
    blocks: Receiver<io::Result<Vec<u8>>>,
    spare: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    /// The source's error, repeated on every later read.
    error: Option<(io::ErrorKind, String)>,
}

impl ReadAhead {
    pub fn spawn<'scope, R: Read + Send + 'scope>(
        scope: &'scope Scope<'scope, '_>,
        mut src: R,
    ) -> Self {
        let (tx, blocks) = sync_channel::<io::Result<Vec<u8>>>(DEPTH);
        // Emptied blocks come back for reuse, so the reader allocates at most DEPTH + 2 of them.
        let (spare, spares) = sync_channel::<Vec<u8>>(DEPTH + 1);
        scope.spawn(move || {
            loop {
                let mut buf = spares.try_recv().unwrap_or_default();
                buf.clear();
                // Up to a block, short only at the end (`read_to_end` retries interrupted reads).
                let n = match (&mut src).take(BLOCK as u64).read_to_end(&mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                // The receiver is gone when the caller stopped early: nothing more to do.
                if n == 0 || tx.send(Ok(buf)).is_err() {
                    return;
                }
            }
        });
        ReadAhead {
            blocks,
            spare,
            cur: Vec::new(),
            pos: 0,
            error: None,
        }
    }
}

impl BufRead for ReadAhead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Some((kind, message)) = &self.error {
            return Err(io::Error::new(*kind, message.clone()));
        }
        if self.pos == self.cur.len() {
            let used = std::mem::take(&mut self.cur);
            let _ = self.spare.try_send(used);
            self.pos = 0;
            match self.blocks.recv() {
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(e)) => {
                    self.error = Some((e.kind(), e.to_string()));
                    return Err(e);
                }
                // The thread has ended after the last block: end of input, now and on every call.
                Err(_) => {}
            }
        }
        Ok(&self.cur[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.cur.len());
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let have = self.fill_buf()?;
        let n = have.len().min(out.len());
        out[..n].copy_from_slice(&have[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// A [`Write`] that hands full blocks to a scoped thread writing them to `dst`. [`Write::flush`]
/// hands over what is buffered without waiting; [`WriteBehind::finish`] waits for every byte and
/// reports the first error.
pub struct WriteBehind<'scope> {
    blocks: Option<SyncSender<Vec<u8>>>,
    spares: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    thread: Option<ScopedJoinHandle<'scope, io::Result<()>>>,
}

impl<'scope> WriteBehind<'scope> {
    pub fn spawn<W: Write + Send + 'scope>(scope: &'scope Scope<'scope, '_>, mut dst: W) -> Self {
        let (blocks, rx) = sync_channel::<Vec<u8>>(DEPTH);
        let (spare, spares) = sync_channel::<Vec<u8>>(DEPTH + 1);
        let thread = scope.spawn(move || {
            for mut b in rx {
                dst.write_all(&b)?;
                b.clear();
                let _ = spare.try_send(b);
            }
            dst.flush()
        });
        WriteBehind {
            blocks: Some(blocks),
            spares,
            cur: Vec::with_capacity(BLOCK),
            thread: Some(thread),
        }
    }

    /// Closes the queue and waits for the writer thread: its result.
    fn join(&mut self) -> io::Result<()> {
        self.blocks = None;
        match self.thread.take().map(ScopedJoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the writer thread panicked")),
            None => Err(io::Error::other("an earlier write failed")),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.cur.is_empty() {
            return Ok(());
        }
        let next = self
            .spares
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BLOCK));
        let full = std::mem::replace(&mut self.cur, next);
        match &self.blocks {
            Some(tx) if tx.send(full).is_ok() => Ok(()),
            // The thread stops taking blocks only after a write failed.
            _ => Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("the writer thread stopped early"))),
        }
    }

    /// Writes out what is buffered and waits for the thread to finish.
    pub fn finish(mut self) -> io::Result<()> {
        self.send()?;
        self.join()
    }
}

impl Write for WriteBehind<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cur.len() == BLOCK {
            self.send()?;
        }
        let n = (BLOCK - self.cur.len()).min(buf.len());
        self.cur.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_pass_through_unchanged_in_both_directions() {
        let data: Vec<u8> = (0..3 * BLOCK + 12345).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        std::thread::scope(|s| {
            let mut r = ReadAhead::spawn(s, &data[..]);
            let mut w = WriteBehind::spawn(s, &mut out);
            // Odd-sized copies so block boundaries fall mid-buffer.
            let mut buf = vec![0u8; 777_777];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n]).unwrap();
            }
            w.finish().unwrap();
        });
        assert!(out == data);
    }

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn errors_reach_the_caller() {
        std::thread::scope(|s| {
            let mut r = ReadAhead::spawn(s, Failing);
            let e = r.read(&mut [0u8; 10]).unwrap_err();
            assert_eq!(e.to_string(), "disk on fire");
            let again = r.read(&mut [0u8; 10]).unwrap_err();
            assert_eq!(again.to_string(), "disk on fire", "the error repeats");

            let mut w = WriteBehind::spawn(s, Failing);
            let big = vec![0u8; 3 * BLOCK];
            let first = w.write_all(&big).and_then(|()| w.flush());
            let e = match first {
                Err(e) => e,
                Ok(()) => w.finish().unwrap_err(),
            };
            assert_eq!(e.to_string(), "disk full");
        });
    }
}
