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

use aws_sdk_s3::primitives::ByteStream;
use sosw_core::error::render_error;
use thiserror::Error;

/// S3 failures, naming the bucket and key.
#[derive(Debug, Error)]
#[error("S3 {operation} s3://{bucket}/{key} failed: {message}")]
pub struct QueueError {
    /// The S3 operation.
    pub operation: &'static str,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The SDK error.
    pub message: String,
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

const FIRST_ROW: &str = "sosw-first-row";

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
        QueueError {
            operation,
            bucket: self.bucket.clone(),
            key: key.to_string(),
            message: render_error(&e),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<QueueFile>, QueueError> {
        let out = match self.s3.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(self.err("GetObject", key, e)),
        };
        let first_row = out
            .metadata()
            .and_then(|m| m.get(FIRST_ROW))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| self.err("GetObject(body)", key, e))?
            .into_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        Ok(Some(QueueFile { rows, first_row }))
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

    /// Upload a new file in locked state.
    pub async fn put_locked(&self, name: &str, file: &QueueFile) -> Result<(), QueueError> {
        self.put(&self.key(&format!("locked_{name}")), file).await
    }

    /// The locked file, if a previous attempt left it (a crash or a retried invocation).
    pub async fn get_locked(&self, name: &str) -> Result<Option<QueueFile>, QueueError> {
        self.get(&self.key(&format!("locked_{name}"))).await
    }

    /// Take a handed-over file: lock it (copy to `locked_`, delete the unlocked one) and return it.
    pub async fn take_unlocked(&self, name: &str) -> Result<Option<QueueFile>, QueueError> {
        let key = self.key(name);
        let Some(file) = self.get(&key).await? else {
            return Ok(None);
        };
        let locked = self.key(&format!("locked_{name}"));
        self.s3
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{}", self.bucket, key))
            .key(&locked)
            .send()
            .await
            .map_err(|e| self.err("CopyObject", &locked, e))?;
        self.delete(&key).await?;
        Ok(Some(file))
    }

    /// Rows of the locked file already written, if recorded.
    pub async fn checkpoint(&self, name: &str) -> Result<Option<usize>, QueueError> {
        let key = self.key(&format!("locked_{name}.checkpoint"));
        match self.s3.get_object().bucket(&self.bucket).key(&key).send().await {
            Ok(out) => {
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| self.err("GetObject(body)", &key, e))?
                    .into_bytes();
                Ok(String::from_utf8_lossy(&bytes).trim().parse().ok())
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.err("GetObject", &key, e)),
        }
    }

    /// Record that rows up to (absolute index) `done` are in the queue table.
    pub async fn set_checkpoint(&self, name: &str, done: usize) -> Result<(), QueueError> {
        let key = self.key(&format!("locked_{name}.checkpoint"));
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

    /// Hand the rest over: upload it unlocked, then remove the lock and its checkpoint.
    pub async fn hand_over(&self, name: &str, rest: &QueueFile) -> Result<(), QueueError> {
        self.put(&self.key(name), rest).await?;
        self.release(name).await
    }

    /// Remove the lock and its checkpoint (the file is done or handed over).
    pub async fn release(&self, name: &str) -> Result<(), QueueError> {
        self.delete(&self.key(&format!("locked_{name}.checkpoint")))
            .await?;
        self.delete(&self.key(&format!("locked_{name}"))).await
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
