//! Queue files in S3: the chunked rows of a job, one JSON object a line, exactly as Python sosw
//! writes its `tasks_queue_<request_id>.txt`.
//!
//! | key | meaning |
//! |---|---|
//! | `<s3_prefix>/locked_<file>` | being processed by a scheduler invocation |
//! | `<s3_prefix>/locked_<file>.checkpoint` | how many rows of it are already in `sosw_tasks` |
//! | `<s3_prefix>/<file>` | the rest, handed over to a sibling invocation |
//!
//! Each object carries `x-amz-meta-sosw-first-row`: the index of its first row in the original
//! file, so task ids derived from (file, row) stay the same across hand-overs and resumptions.
//! A handed-over file is the whole locked file, copied inside S3, with `x-amz-meta-sosw-next-row`:
//! the first row the sibling has to write (rows before it are in the tables).
//!
//! Files are read as a stream, one row at a time ([`QueueReader`]): memory does not grow with the
//! file. Blank lines are not rows. A row longer than [`MAX_ROW_BYTES`], bytes that are not UTF-8,
//! metadata that is not a row index, or a checkpoint past the end of the file are errors naming
//! the file and the row; the file stays in S3.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sosw_core::error::render_error;
use std::pin::Pin;
use thiserror::Error;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The longest row read from a queue file (a task item may not exceed 400 KB in DynamoDB).
pub const MAX_ROW_BYTES: usize = 1024 * 1024;

/// Why a queue file could not be read or moved.
#[derive(Debug, Error)]
pub enum QueueError {
    /// An S3 call failed, naming the bucket and key.
    #[error("S3 {operation} s3://{bucket}/{key} failed: {message}")]
    S3 {
        /// The S3 operation.
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The SDK error.
        message: String,
    },
    /// A metadata value of the file is not a row index.
    #[error("queue file s3://{bucket}/{key}: metadata `{field}` = {value:?} is not a row index; the file is left as it is")]
    Metadata {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The metadata key.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// A row is not UTF-8, or too long.
    #[error("queue file s3://{bucket}/{key} row {row}: {reason}; the file is left as it is")]
    Row {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Absolute row index.
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file ends before the row a hand-over or checkpoint says is next.
    #[error(
        "queue file s3://{bucket}/{key} ends at row {rows}, but its {source_kind} says rows up to {next_row} are \
         written; the file is not the one the checkpoint was taken on (truncated or replaced?): left as it is"
    )]
    PastEnd {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The row the file should reach.
        next_row: usize,
        /// Rows the file has (absolute index of its end).
        rows: usize,
        /// `checkpoint` or `sosw-next-row metadata`.
        source_kind: &'static str,
    },
}

/// Rows of a queue file with the index of the first one in the original file.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFile {
    /// The raw lines (JSON objects), without newlines.
    pub rows: Vec<String>,
    /// Index of `rows[0]` in the original file.
    pub first_row: usize,
}

impl QueueFile {
    /// Serialize as the file body.
    pub fn body(&self) -> String {
        let mut out = String::with_capacity(self.rows.iter().map(|r| r.len() + 1).sum());
        for r in &self.rows {
            out.push_str(r);
            out.push('\n');
        }
        out
    }
}

pub(crate) const FIRST_ROW: &str = "sosw-first-row";
const NEXT_ROW: &str = "sosw-next-row";

/// Characters escaped in `x-amz-copy-source` (everything but unreserved characters and `/`).
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// A locked queue file being read row by row from S3.
pub struct QueueReader {
    bucket: String,
    key: String,
    body: Pin<Box<dyn AsyncBufRead + Send>>,
    /// Absolute index of the next row [`Self::next_row`] returns.
    row: usize,
    /// Absolute index of the file's first row.
    pub first_row: usize,
    /// The first row not yet known to be written (from `sosw-next-row`; `first_row` if absent).
    pub next_row: usize,
    buf: Vec<u8>,
}

impl std::fmt::Debug for QueueReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueReader")
            .field("key", &self.key)
            .field("row", &self.row)
            .field("first_row", &self.first_row)
            .field("next_row", &self.next_row)
            .finish()
    }
}

impl QueueReader {
    fn row_err(&self, reason: String) -> QueueError {
        QueueError::Row {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            row: self.row,
            reason,
        }
    }

    /// The absolute index of the next row.
    pub fn position(&self) -> usize {
        self.row
    }

    /// The S3 key being read.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The next row as raw bytes (into `self.buf`), `false` at the end of the file.
    async fn next_raw(&mut self) -> Result<bool, QueueError> {
        loop {
            self.buf.clear();
            let limit = (MAX_ROW_BYTES + 2) as u64;
            let n = (&mut self.body)
                .take(limit)
                .read_until(b'\n', &mut self.buf)
                .await
                .map_err(|e| self.row_err(format!("reading failed: {e}")))?;
            if n == 0 {
                return Ok(false);
            }
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
            } else if n as u64 == limit {
                return Err(self.row_err(format!("longer than {MAX_ROW_BYTES} bytes")));
            }
            if self.buf.len() > MAX_ROW_BYTES {
                return Err(self.row_err(format!("longer than {MAX_ROW_BYTES} bytes")));
            }
            if !self.buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(true);
            }
        }
    }

    /// The next row (a line that is not blank), `None` at the end of the file.
    pub async fn next_row(&mut self) -> Result<Option<(usize, String)>, QueueError> {
        if !self.next_raw().await? {
            return Ok(None);
        }
        let text = std::str::from_utf8(&self.buf)
            .map_err(|e| self.row_err(format!("not UTF-8 ({e})")))?
            .to_string();
        let row = self.row;
        self.row += 1;
        Ok(Some((row, text)))
    }

    /// Read up to `n` rows.
    pub async fn next_rows(&mut self, n: usize) -> Result<Vec<(usize, String)>, QueueError> {
        let mut rows = Vec::with_capacity(n.min(1024));
        while rows.len() < n {
            match self.next_row().await? {
                Some(r) => rows.push(r),
                None => break,
            }
        }
        Ok(rows)
    }

    /// Skip rows until the absolute index `row`; an error if the file ends first.
    pub async fn skip_to(&mut self, row: usize, source_kind: &'static str) -> Result<(), QueueError> {
        while self.row < row {
            if !self.next_raw().await? {
                return Err(QueueError::PastEnd {
                    bucket: self.bucket.clone(),
                    key: self.key.clone(),
                    next_row: row,
                    rows: self.row,
                    source_kind,
                });
            }
            self.row += 1;
        }
        Ok(())
    }
}

/// Where a queue file is ([`QueueStore::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueFileState {
    /// `locked_<name>`: a Scheduler is working on it, or died on it (then its retry, or a
    /// continuation `{"file_name": "<name>"}`, resumes it from its checkpoint).
    Locked,
    /// `<name>`: handed over to a sibling that has not picked it up yet.
    HandedOver,
}

/// The queue files of one bucket and prefix.
#[derive(Debug, Clone)]
pub struct QueueStore {
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl QueueStore {
    /// Queue files under `prefix` in `bucket`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Self {
        Self {
            s3,
            bucket: bucket.to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// The key of a file.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    fn err(&self, operation: &'static str, key: &str, e: impl std::error::Error + 'static) -> QueueError {
        QueueError::S3 {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_string(),
            message: render_error(&e),
        }
    }

    fn locked_key(&self, name: &str) -> String {
        self.key(&format!("locked_{name}"))
    }

    fn checkpoint_key(&self, name: &str) -> String {
        self.key(&format!("locked_{name}.checkpoint"))
    }

    /// Open a file for reading as a stream; `None` if it does not exist.
    async fn open(&self, key: &str) -> Result<Option<QueueReader>, QueueError> {
        let out = match self.s3.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.err("GetObject", key, e)),
        };
        let meta = |field: &'static str| -> Result<Option<usize>, QueueError> {
            match out.metadata().and_then(|m| m.get(field)) {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| QueueError::Metadata {
                    bucket: self.bucket.clone(),
                    key: key.to_string(),
                    field,
                    value: v.clone(),
                }),
            }
        };
        let first_row = meta(FIRST_ROW)?.unwrap_or(0);
        let next_row = meta(NEXT_ROW)?.unwrap_or(first_row).max(first_row);
        Ok(Some(QueueReader {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            body: Box::pin(out.body.into_async_read()),
            row: first_row,
            first_row,
            next_row,
            buf: Vec::new(),
        }))
    }

    async fn put(&self, key: &str, file: &QueueFile) -> Result<(), QueueError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .metadata(FIRST_ROW, file.first_row.to_string())
            .content_type("application/x-ndjson")
            .body(ByteStream::from(file.body().into_bytes()))
            .send()
            .await
            .map_err(|e| self.err("PutObject", key, e))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), QueueError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.err("DeleteObject", key, e))?;
        Ok(())
    }

    /// `x-amz-copy-source` for a key of this bucket: URL-encoded, as S3 requires (a name with a
    /// space, `?`, `#`, `+` or non-ASCII characters is otherwise another key, or none).
    pub fn copy_source(&self, key: &str) -> String {
        format!(
            "{}/{}",
            utf8_percent_encode(&self.bucket, COPY_SOURCE),
            utf8_percent_encode(key, COPY_SOURCE)
        )
    }

    /// Upload a new file in locked state.
    pub async fn put_locked(&self, name: &str, file: &QueueFile) -> Result<(), QueueError> {
        self.put(&self.locked_key(name), file).await
    }

    /// The locked file, if a previous attempt left it (a crash or a retried invocation).
    pub async fn get_locked(&self, name: &str) -> Result<Option<QueueReader>, QueueError> {
        self.open(&self.locked_key(name)).await
    }

    /// Take a handed-over file: lock it (copy to `locked_` inside S3, with its metadata; delete
    /// the unlocked one) and open it. `None` if there is no unlocked file (never handed over, or
    /// already taken by another delivery of the same continuation).
    pub async fn take_unlocked(&self, name: &str) -> Result<Option<QueueReader>, QueueError> {
        let key = self.key(name);
        let locked = self.locked_key(name);
        match self
            .s3
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(self.copy_source(&key))
            .key(&locked)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("NoSuchKey") => return Ok(None),
            Err(e) => return Err(self.err("CopyObject", &locked, e)),
        }
        self.delete(&key).await?;
        self.get_locked(name).await
    }

    /// Rows of the locked file already written, if recorded. A checkpoint that is not a number
    /// is ignored with a warning: rows are created exactly once whatever the checkpoint says, it
    /// only saves re-checking rows.
    pub async fn checkpoint(&self, name: &str) -> Result<Option<usize>, QueueError> {
        let key = self.checkpoint_key(name);
        match self.s3.get_object().bucket(&self.bucket).key(&key).send().await {
            Ok(out) => {
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| self.err("GetObject(body)", &key, e))?
                    .into_bytes();
                let text = String::from_utf8_lossy(&bytes);
                match text.trim().parse() {
                    Ok(n) => Ok(Some(n)),
                    Err(_) => {
                        tracing::warn!(
                            key = %key,
                            checkpoint = %text.chars().take(64).collect::<String>(),
                            "checkpoint is not a row index; ignored, rows are checked from the file's start"
                        );
                        Ok(None)
                    }
                }
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.err("GetObject", &key, e)),
        }
    }

    /// Record that rows up to (absolute index) `done` are in the queue table.
    pub async fn set_checkpoint(&self, name: &str, done: usize) -> Result<(), QueueError> {
        let key = self.checkpoint_key(name);
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(done.to_string().into_bytes()))
            .send()
            .await
            .map_err(|e| self.err("PutObject", &key, e))?;
        Ok(())
    }

    /// Hand the rest over: copy the locked file inside S3 to the unlocked name with
    /// `sosw-next-row` = `next_row`, then remove the lock and its checkpoint. Nothing is read.
    pub async fn hand_over(&self, name: &str, first_row: usize, next_row: usize) -> Result<(), QueueError> {
        let key = self.key(name);
        self.s3
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(self.copy_source(&self.locked_key(name)))
            .key(&key)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .metadata(FIRST_ROW, first_row.to_string())
            .metadata(NEXT_ROW, next_row.to_string())
            .content_type("application/x-ndjson")
            .send()
            .await
            .map_err(|e| self.err("CopyObject", &key, e))?;
        self.release(name).await
    }

    /// Remove the lock, then its checkpoint (the file is done or handed over). In this order a
    /// crash in between leaves a checkpoint without a file, never a file without its checkpoint.
    pub async fn release(&self, name: &str) -> Result<(), QueueError> {
        self.delete(&self.locked_key(name)).await?;
        self.delete(&self.checkpoint_key(name)).await
    }

    /// Where a queue file is: locked by a Scheduler working on it (or that died on it), handed
    /// over to a sibling (not yet picked up), or absent. Two HeadObjects at most; nothing read.
    pub async fn state(&self, name: &str) -> Result<Option<QueueFileState>, QueueError> {
        for (key, state) in [
            (self.locked_key(name), QueueFileState::Locked),
            (self.key(name), QueueFileState::HandedOver),
        ] {
            match self.s3.head_object().bucket(&self.bucket).key(&key).send().await {
                Ok(_) => return Ok(Some(state)),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {}
                Err(e) => return Err(self.err("HeadObject", &key, e)),
            }
        }
        Ok(None)
    }

    /// Every key under the prefix (for tests and `sosw status`).
    pub async fn list(&self) -> Result<Vec<String>, QueueError> {
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let out = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .send()
            .await
            .map_err(|e| self.err("ListObjectsV2", &prefix, e))?;
        Ok(out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect())
    }
}
