//! Streaming a byte range of a file to a socket, with the faults planned for it.
//!
//! A blocking thread reads the file in 1 MiB chunks into a few recycled buffers while the
//! connection task writes the previous ones, so disk and socket work overlap. Without faults or
//! a pace a chunk goes out in one `write_all`; there is no work per byte.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::faults::{BodyPlan, Cutoff};
use crate::pacer::{Pacer, PACED_CHUNK};
use crate::stats::Stats;

/// The size of one read from the file.
const READ_CHUNK: usize = 1024 * 1024;

/// How many chunk buffers one body uses: one being written, the others being read ahead.
const BUFFERS: usize = 4;

/// How long a stalled connection is kept open if the peer does not close it.
const STALL_LIMIT: Duration = Duration::from_secs(10 * 60);

/// The part of a file a response body carries.
#[derive(Debug)]
pub(crate) struct BodySource {
    /// The open file.
    pub file: File,
    /// The file's path in its repository, which faults and statistics are keyed by.
    pub repo_path: String,
    /// The size of the whole file.
    pub file_size: u64,
    /// The first byte to send.
    pub start: u64,
    /// One past the last byte to send.
    pub end: u64,
}

/// Where the body goes, and the shared state that shapes and counts it.
#[derive(Debug)]
pub(crate) struct BodySink<'a> {
    /// The connection.
    pub stream: &'a mut TcpStream,
    /// The global pace.
    pub pacer: &'a Pacer,
    /// The counters to update.
    pub stats: &'a Stats,
}

/// Sends the body of `source` as `plan` says, then ends the connection the way the plan says.
///
/// After a body the connection is over: the caller drops the stream, which closes it.
pub(crate) async fn send_body(source: BodySource, plan: BodyPlan, mut sink: BodySink<'_>) -> io::Result<()> {
    let end = plan.limit.map_or(source.end, |(after, _)| source.end.min(source.start.saturating_add(after)));
    let (mut chunks, recycle) = spawn_reader(source.file, source.start, end - source.start);
    let mut offset = source.start;
    while let Some(chunk) = chunks.recv().await {
        let mut chunk = chunk?;
        if let Some(at) = plan.corrupt_at.filter(|at| (offset..offset + chunk.len() as u64).contains(at)) {
            let index = usize::try_from(at - offset).expect("an offset inside a chunk fits in usize");
            chunk[index] ^= 0xFF;
        }
        write_paced(&chunk, &source.repo_path, &mut sink).await?;
        offset += chunk.len() as u64;
        // The reader may have stopped already; a buffer it does not take back is simply freed.
        let _ = recycle.send(chunk);
    }
    if offset != end {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file ended before the planned body"));
    }
    match plan.limit.map(|(_, cutoff)| cutoff) {
        Some(Cutoff::Drop) if end < source.end => Ok(()),
        Some(Cutoff::Stall) if end < source.end => {
            sink.stream.flush().await?;
            wait_for_peer_to_close(sink.stream).await;
            Ok(())
        }
        _ => sink.stream.shutdown().await,
    }
}

/// Writes a chunk, in small pieces that wait for the pace when one is set, counting what went out.
async fn write_paced(chunk: &[u8], repo_path: &str, sink: &mut BodySink<'_>) -> io::Result<()> {
    if sink.pacer.rate().is_none() {
        sink.stream.write_all(chunk).await?;
        sink.stats.record_bytes(repo_path, chunk.len() as u64);
        return Ok(());
    }
    for piece in chunk.chunks(PACED_CHUNK) {
        sink.pacer.wait_for(piece.len()).await;
        sink.stream.write_all(piece).await?;
        sink.stats.record_bytes(repo_path, piece.len() as u64);
    }
    Ok(())
}

/// Keeps a stalled connection open until the peer closes it, fails, or the stall limit passes.
async fn wait_for_peer_to_close(stream: &mut TcpStream) {
    let mut discard = [0u8; 1024];
    let drain = async { while matches!(stream.read(&mut discard).await, Ok(read) if read > 0) {} };
    let _ = tokio::time::timeout(STALL_LIMIT, drain).await;
}

/// Starts a blocking thread that reads `length` bytes from `start` and sends them in chunks.
///
/// Buffers come back through the returned sender so that a large body reuses a few allocations.
/// When the receiver is dropped the thread stops at its next chunk.
fn spawn_reader(
    file: File,
    start: u64,
    length: u64,
) -> (mpsc::Receiver<io::Result<Vec<u8>>>, std_mpsc::Sender<Vec<u8>>) {
    let (chunk_sender, chunk_receiver) = mpsc::channel(BUFFERS - 1);
    let (recycle_sender, recycle_receiver) = std_mpsc::channel();
    tokio::task::spawn_blocking(move || {
        if let Err(error) = read_chunks(file, start, length, &chunk_sender, &recycle_receiver) {
            let _ = chunk_sender.blocking_send(Err(error));
        }
    });
    (chunk_receiver, recycle_sender)
}

/// The body of the reader thread; returns early, without error, when the writer has gone.
fn read_chunks(
    mut file: File,
    start: u64,
    length: u64,
    chunks: &mpsc::Sender<io::Result<Vec<u8>>>,
    recycled: &std_mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    file.seek(SeekFrom::Start(start))?;
    let mut remaining = length;
    let mut allocated = 0;
    while remaining > 0 {
        let mut buffer = match recycled.try_recv() {
            Ok(buffer) => buffer,
            Err(_) if allocated < BUFFERS => {
                allocated += 1;
                Vec::with_capacity(READ_CHUNK)
            }
            Err(_) => match recycled.recv() {
                Ok(buffer) => buffer,
                Err(_) => return Ok(()),
            },
        };
        let size = usize::try_from(remaining).map_or(READ_CHUNK, |remaining| remaining.min(READ_CHUNK));
        buffer.resize(size, 0);
        file.read_exact(&mut buffer)?;
        remaining -= size as u64;
        if chunks.blocking_send(Ok(buffer)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
