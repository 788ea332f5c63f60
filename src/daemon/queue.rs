//! The queue the consumer works on, behind [`Queue`]: receive, delete, change visibility and
//! read the depth. [`SqsQueue`] is the real one; [`MemoryQueue`] (tests only) keeps messages
//! in memory with SQS's visibility semantics, so the batch pipeline is unit-tested without an
//! emulator. The consumer never sees an SQS type.

use std::future::Future;

use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName,
};
use chrono::{DateTime, Utc};

use crate::config::redacted_url;

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// SQS's ApproximateReceiveCount, at least 1.
    pub receive_count: u32,
    /// When the producer sent it.
    pub sent_at: Option<DateTime<Utc>>,
}

/// A batch operation's entry that failed: which entry (the index it was given) and why.
pub type EntryFailure = (usize, String);

/// The queue calls the consumer makes. Entries of batch calls carry the caller's index, so a
/// failure can be told back to its message.
pub trait Queue: Send + Sync + 'static {
    /// Up to `max` messages, waiting up to `wait_seconds` for the first, each invisible for
    /// `visibility_seconds`.
    fn receive(
        &self,
        max: i32,
        wait_seconds: i32,
        visibility_seconds: i32,
    ) -> impl Future<Output = Result<Vec<Received>, String>> + Send;

    /// Deletes the messages of these (index, receipt handle) entries; the entries that failed.
    fn delete(
        &self,
        entries: &[(usize, &str)],
    ) -> impl Future<Output = Result<Vec<EntryFailure>, String>> + Send;

    /// Sets each (index, receipt handle, seconds) entry's visibility; the entries that failed.
    fn set_visibility(
        &self,
        entries: &[(usize, &str, i32)],
    ) -> impl Future<Output = Result<Vec<EntryFailure>, String>> + Send;

    /// (visible, in flight) messages, approximately.
    fn depth(&self) -> impl Future<Output = Result<(u64, u64), String>> + Send;
}

/// An SQS queue by URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }
}

/// A failed SQS call in one line, never the SDK's debug structures: the service's error
/// code and message (with what to do when the queue does not exist), or why no answer came.
pub fn sqs_error_line<E, R>(url: &str, error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service) => service_error_line(url, service.code(), service.message()),
        None => format!("unreachable: {}", DisplayErrorContext(error)),
    }
}

/// Whether SQS answered that the queue does not exist: `QueueDoesNotExist` in the JSON
/// protocol, `AWS.SimpleQueueService.NonExistentQueue` in the query protocol.
pub fn is_missing_queue(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("QueueDoesNotExist" | "AWS.SimpleQueueService.NonExistentQueue")
    )
}

fn service_error_line(url: &str, code: Option<&str>, message: Option<&str>) -> String {
    let answer = format!(
        "{}: {}",
        code.unwrap_or("unknown error"),
        message.unwrap_or("no message")
    );
    if is_missing_queue(code) {
        format!(
            "{} does not exist ({answer}): create it, or fix SYNC_SQS_QUEUE_URL (--queue-url) and the region (AWS_REGION)",
            redacted_url(url)
        )
    } else {
        format!("answered {answer}")
    }
}

impl Queue for SqsQueue {
    async fn receive(
        &self,
        max: i32,
        wait_seconds: i32,
        visibility_seconds: i32,
    ) -> Result<Vec<Received>, String> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .visibility_timeout(visibility_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| sqs_error_line(&self.url, &e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|message| {
                let attribute = |name: MessageSystemAttributeName| {
                    message
                        .attributes
                        .as_ref()
                        .and_then(|a| a.get(&name))
                        .and_then(|v| v.parse::<i64>().ok())
                };
                let receive_count = attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                    .map_or(1, |n| n.clamp(1, 1_000) as u32);
                let sent_at = attribute(MessageSystemAttributeName::SentTimestamp)
                    .and_then(DateTime::from_timestamp_millis);
                let message_id = message.message_id.clone().unwrap_or_default();
                // Without a receipt handle a message cannot be acted on: it returns after
                // its visibility timeout.
                let Some(receipt_handle) = message.receipt_handle else {
                    tracing::warn!(message_id, "message without a receipt handle; skipped");
                    return None;
                };
                Some(Received {
                    message_id,
                    receipt_handle,
                    body: message.body.unwrap_or_default(),
                    receive_count,
                    sent_at,
                })
            })
            .collect())
    }

    async fn delete(&self, entries: &[(usize, &str)]) -> Result<Vec<EntryFailure>, String> {
        let entries: Vec<DeleteMessageBatchRequestEntry> = entries
            .iter()
            .filter_map(|&(n, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .receipt_handle(handle)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sqs_error_line(&self.url, &e))?;
        Ok(failures(out.failed()))
    }

    async fn set_visibility(
        &self,
        entries: &[(usize, &str, i32)],
    ) -> Result<Vec<EntryFailure>, String> {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = entries
            .iter()
            .filter_map(|&(n, handle, seconds)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(n.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(seconds)
                    .build()
                    .ok()
            })
            .collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sqs_error_line(&self.url, &e))?;
        Ok(failures(out.failed()))
    }

    async fn depth(&self) -> Result<(u64, u64), String> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| sqs_error_line(&self.url, &e))?;
        let count = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            count(QueueAttributeName::ApproximateNumberOfMessages),
            count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

/// SQS's failed batch entries, by the index their id carries.
fn failures(failed: &[aws_sdk_sqs::types::BatchResultErrorEntry]) -> Vec<EntryFailure> {
    failed
        .iter()
        .map(|f| {
            (
                f.id().parse().unwrap_or(usize::MAX),
                format!("{}: {}", f.code(), f.message().unwrap_or_default()),
            )
        })
        .collect()
}

#[cfg(test)]
pub use memory::MemoryQueue;

#[cfg(test)]
mod memory {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::*;

    /// A standard queue in memory: each message is visible again once its visibility
    /// timeout passes, counts its receives, and is gone only when deleted with the receipt
    /// handle of its latest receive.
    #[derive(Debug, Default)]
    pub struct MemoryQueue {
        messages: Mutex<Vec<Stored>>,
    }

    #[derive(Debug)]
    struct Stored {
        id: String,
        body: String,
        receives: u32,
        handle: Option<String>,
        visible_at: Instant,
    }

    impl MemoryQueue {
        pub fn send(&self, body: &str) {
            let mut messages = self.messages.lock().unwrap();
            let id = format!("m{}", messages.len());
            messages.push(Stored {
                id,
                body: body.to_owned(),
                receives: 0,
                handle: None,
                visible_at: Instant::now(),
            });
        }

        /// Bodies still in the queue (visible or not), in send order.
        pub fn bodies(&self) -> Vec<String> {
            let messages = self.messages.lock().unwrap();
            messages.iter().map(|m| m.body.clone()).collect()
        }

        /// Bodies visible now.
        pub fn visible(&self) -> Vec<String> {
            let now = Instant::now();
            let messages = self.messages.lock().unwrap();
            messages
                .iter()
                .filter(|m| m.visible_at <= now)
                .map(|m| m.body.clone())
                .collect()
        }
    }

    impl Queue for MemoryQueue {
        async fn receive(
            &self,
            max: i32,
            _wait_seconds: i32,
            visibility_seconds: i32,
        ) -> Result<Vec<Received>, String> {
            let now = Instant::now();
            let mut messages = self.messages.lock().unwrap();
            Ok(messages
                .iter_mut()
                .filter(|m| m.visible_at <= now)
                .take(usize::try_from(max).unwrap_or(0))
                .map(|m| {
                    m.receives += 1;
                    let handle = format!("{}#{}", m.id, m.receives);
                    m.handle = Some(handle.clone());
                    m.visible_at = now + Duration::from_secs(visibility_seconds.max(0) as u64);
                    Received {
                        message_id: m.id.clone(),
                        receipt_handle: handle,
                        body: m.body.clone(),
                        receive_count: m.receives,
                        sent_at: None,
                    }
                })
                .collect())
        }

        async fn delete(&self, entries: &[(usize, &str)]) -> Result<Vec<EntryFailure>, String> {
            let mut messages = self.messages.lock().unwrap();
            let mut failed = Vec::new();
            for &(n, handle) in entries {
                match messages
                    .iter()
                    .position(|m| m.handle.as_deref() == Some(handle))
                {
                    Some(at) => {
                        messages.remove(at);
                    }
                    None => failed.push((n, "ReceiptHandleIsInvalid".to_owned())),
                }
            }
            Ok(failed)
        }

        async fn set_visibility(
            &self,
            entries: &[(usize, &str, i32)],
        ) -> Result<Vec<EntryFailure>, String> {
            let now = Instant::now();
            let mut messages = self.messages.lock().unwrap();
            let mut failed = Vec::new();
            for &(n, handle, seconds) in entries {
                match messages
                    .iter_mut()
                    .find(|m| m.handle.as_deref() == Some(handle))
                {
                    Some(m) => m.visible_at = now + Duration::from_secs(seconds.max(0) as u64),
                    None => failed.push((n, "ReceiptHandleIsInvalid".to_owned())),
                }
            }
            Ok(failed)
        }

        async fn depth(&self) -> Result<(u64, u64), String> {
            let now = Instant::now();
            let messages = self.messages.lock().unwrap();
            let visible = messages.iter().filter(|m| m.visible_at <= now).count() as u64;
            Ok((visible, messages.len() as u64 - visible))
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::error::ErrorMetadata;
    use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;
    use aws_sdk_sqs::types::error::QueueDoesNotExist;

    use super::*;

    const URL: &str = "https://sqs.eu-west-1.amazonaws.com/123456789012/sync";

    fn service(error: GetQueueAttributesError) -> SdkError<GetQueueAttributesError, ()> {
        SdkError::service_error(error, ())
    }

    #[test]
    fn a_missing_queue_is_one_line_naming_the_queue_and_the_fix() {
        let meta = |code: &str| {
            ErrorMetadata::builder()
                .code(code)
                .message("The specified queue does not exist.")
                .build()
        };
        // The query protocol's code is not modelled: the SDK's Display of it is a debug struct.
        let unmodelled = service(GetQueueAttributesError::generic(meta(
            "AWS.SimpleQueueService.NonExistentQueue",
        )));
        let modelled = service(GetQueueAttributesError::QueueDoesNotExist(
            QueueDoesNotExist::builder()
                .message("The specified queue does not exist.")
                .meta(meta("QueueDoesNotExist"))
                .build(),
        ));
        for error in [unmodelled, modelled] {
            let line = sqs_error_line(URL, &error);
            assert!(
                line.starts_with(&format!("{URL} does not exist ("))
                    && line.contains("The specified queue does not exist.")
                    && line.contains("create it, or fix SYNC_SQS_QUEUE_URL")
                    && line.contains("region"),
                "{line}"
            );
            assert!(!line.contains('\n') && !line.contains("Error {"), "{line}");
        }
    }

    #[test]
    fn other_failures_say_what_sqs_answered_or_that_it_did_not() {
        let denied = service(GetQueueAttributesError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("not authorized to perform sqs:GetQueueAttributes")
                .build(),
        ));
        assert_eq!(
            sqs_error_line(URL, &denied),
            "answered AccessDenied: not authorized to perform sqs:GetQueueAttributes"
        );
        let timeout = SdkError::<GetQueueAttributesError, ()>::timeout_error("read timed out");
        let line = sqs_error_line(URL, &timeout);
        assert!(
            line.starts_with("unreachable: ") && !line.contains('\n'),
            "{line}"
        );
    }
}
