//! Job → queue file: a new job is chunked, checked completely ([`crate::validate`]), then written
//! to S3 as its queue file while it is generated.
//!
//! Two passes over the rows, which are generated lazily ([`sosw_chunking::SchedulerRules::rows`]):
//! the first checks every row and uploads nothing, so a rejected job leaves no queue file and no
//! task; the second serializes the rows (Python `json.dumps`, one a line) into parts of
//! [`PART_SIZE`] bytes, streamed to S3 as a multipart upload (a single PutObject when the file is
//! smaller than one part). The object appears only when the upload completes; an upload that
//! fails is aborted. Memory is one part, whatever the job's size.

use crate::queue::FIRST_ROW;
use crate::validate::{check_job_per_labourer, JobValidator};
use crate::{Scheduler, SchedulerError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde_json::Value;
use sosw_core::error::render_error;
use sosw_core::TaskError;
use tracing::{info, warn};

/// Bytes per uploaded part (S3's minimum for all but the last part is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// A queue file uploaded as it is written: parts of `part_size` bytes.
#[derive(Debug)]
pub struct StreamingUpload {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    part_size: usize,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl StreamingUpload {
    /// A new upload of `s3://bucket/key`; nothing is sent until a part is full or [`Self::finish`].
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, key: &str, part_size: usize) -> Self {
        Self {
            s3,
            bucket: bucket.to_string(),
            key: key.to_string(),
            part_size,
            buffer: Vec::with_capacity(part_size.min(PART_SIZE) + 1024),
            upload_id: None,
            parts: Vec::new(),
        }
    }

    fn err(&self, operation: &'static str, e: impl std::error::Error + 'static) -> SchedulerError {
        SchedulerError::Queue(crate::queue::QueueError::S3 {
            operation,
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            message: render_error(&e),
        })
    }

    /// Append one row (a line).
    pub async fn write_line(&mut self, line: &str) -> Result<(), SchedulerError> {
        self.buffer.extend_from_slice(line.as_bytes());
        self.buffer.push(b'\n');
        if self.buffer.len() >= self.part_size {
            self.send_part().await?;
        }
        Ok(())
    }

    async fn send_part(&mut self) -> Result<(), SchedulerError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .s3
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .metadata(FIRST_ROW, "0")
                    .content_type("application/x-ndjson")
                    .send()
                    .await
                    .map_err(|e| self.err("CreateMultipartUpload", e))?;
                let id = out.upload_id.ok_or_else(|| {
                    SchedulerError::Queue(crate::queue::QueueError::S3 {
                        operation: "CreateMultipartUpload",
                        bucket: self.bucket.clone(),
                        key: self.key.clone(),
                        message: "no upload id in the response".into(),
                    })
                })?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = i32::try_from(self.parts.len() + 1).map_err(|_| {
            SchedulerError::Queue(crate::queue::QueueError::S3 {
                operation: "UploadPart",
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                message: "too many parts".into(),
            })
        })?;
        let body = std::mem::take(&mut self.buffer);
        let out = self
            .s3
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.err("UploadPart", e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .build(),
        );
        Ok(())
    }

    /// Upload what is left and make the object appear.
    pub async fn finish(mut self) -> Result<(), SchedulerError> {
        let Some(upload_id) = self.upload_id.clone() else {
            let body = std::mem::take(&mut self.buffer);
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .metadata(FIRST_ROW, "0")
                .content_type("application/x-ndjson")
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| self.err("PutObject", e))?;
            return Ok(());
        };
        if !self.buffer.is_empty() {
            self.send_part().await?;
        }
        self.s3
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.err("CompleteMultipartUpload", e))?;
        Ok(())
    }

    /// Drop a started multipart upload (after a failure), so no part is left behind.
    pub async fn abort(self) {
        let Some(upload_id) = &self.upload_id else { return };
        if let Err(e) = self
            .s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .send()
            .await
        {
            warn!(bucket = %self.bucket, key = %self.key, error = %render_error(&e),
                  "aborting the multipart upload failed; S3's lifecycle rule removes its parts");
        }
    }
}

impl Scheduler {
    /// Check a job completely, then write its queue file `name` (locked, first row 0) as it is
    /// generated. Returns the number of rows. A rejected job writes nothing.
    pub async fn stage_job(&self, event: &Value, name: &str) -> Result<usize, SchedulerError> {
        let today = crate::today(&**self.tasks.clock());
        let document = &self.config.document;
        let validator = JobValidator::new(self.tasks.clone());
        let per_labourer = check_job_per_labourer(document, &validator, event, today)?;
        for (labourer, count) in &per_labourer {
            self.check_queue_room(labourer, *count).await?;
        }
        let rows: usize = per_labourer.values().sum();
        let key = self.queue.key(&format!("locked_{name}"));
        let mut upload = StreamingUpload::new(self.s3.clone(), &self.config.queue_bucket, &key, PART_SIZE);
        let mut written = 0usize;
        let result: Result<(), SchedulerError> = async {
            for row in sosw_chunking::plan_event_rows(document, event, today)? {
                upload.write_line(&sosw_core::pyjson::dumps(&row?)).await?;
                written += 1;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            upload.abort().await;
            return Err(e);
        }
        if written != rows {
            // Chunking is deterministic for a job and a date; anything else is a bug.
            upload.abort().await;
            return Err(SchedulerError::Queue(crate::queue::QueueError::S3 {
                operation: "PutObject",
                bucket: self.config.queue_bucket.clone(),
                key,
                message: format!("the job chunked into {rows} rows when checked, {written} when written"),
            }));
        }
        upload.finish().await?;
        info!(file_name = %name, rows, "job checked and staged as a queue file");
        Ok(rows)
    }

    /// Refuse a job whose `count` tasks for `labourer` would not all get a queue position below
    /// now (`newest queued greenfield + greenfield_task_step × i`, the queued range as sosw reads
    /// it), before its queue file is written. The same check guards every batch written later
    /// ([`TaskManager::create_tasks_once`](sosw_core::TaskManager::create_tasks_once)), which
    /// catches what fills the queue meanwhile (another job, a continuation).
    pub async fn check_queue_room(&self, labourer: &str, count: usize) -> Result<(), SchedulerError> {
        let newest = self.tasks.newest_greenfield(labourer).await?;
        let step = self.tasks.config().greenfield_task_step;
        let ceiling = self.tasks.clock().now_secs();
        // Positions newest + step × i for i in 1..=fits are below the ceiling.
        let fits = ceiling
            .checked_sub(1)
            .and_then(|last| last.checked_sub(newest))
            .filter(|room| *room >= 0)
            .and_then(|room| room.checked_div(step))
            .and_then(|fits| usize::try_from(fits).ok())
            .unwrap_or(0);
        if count <= fits {
            return Ok(());
        }
        let first_outside = i64::try_from(fits)
            .ok()
            .and_then(|f| f.checked_add(1))
            .and_then(|i| step.checked_mul(i))
            .and_then(|offset| newest.checked_add(offset));
        Err(SchedulerError::Task(TaskError::QueueFull {
            labourer_id: labourer.to_string(),
            newest,
            step,
            count,
            ceiling,
            greenfield: first_outside,
        }))
    }
}
