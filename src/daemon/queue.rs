//! The queue the consumer works on, behind [`Queue`]: receive, delete, change visibility and
//! read the depth. [`SqsQueue`] is the real one; [`MemoryQueue`] (tests only) keeps messages
//! in memory with SQS's visibility semantics, so the batch pipeline is unit-tested without an
//! emulator. The consumer never sees an SQS type.
//!
//! [`SqsQueue`] also answers what the operator commands ask of a queue: its dead-letter queue
//! (from the `RedrivePolicy`), whole messages with their attributes ([`Envelope`]) to send to
//! another queue, and SQS's message move tasks (`redrive`).

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchOutput;
use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchOutput;
use aws_sdk_sqs::operation::receive_message::builders::ReceiveMessageFluentBuilder;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    MessageSystemAttributeNameForSends, MessageSystemAttributeValue, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;

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

/// Sends one batch call (`send_message_batch`, `delete_message_batch`, ...) of `entries` to
/// `queue` and evaluates to its failed entries; no call when there are no entries.
macro_rules! batch_call {
    ($queue:expr, $operation:ident, $entries:expr) => {{
        let entries = $entries;
        if entries.is_empty() {
            Ok(Vec::new())
        } else {
            $queue
                .client
                .$operation()
                .queue_url(&$queue.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map(|out| failures(out.failed()))
                .map_err(|e| sqs_error_line(&$queue.url, &e))
        }
    }};
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

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Another queue of the same account and client.
    pub fn with_url(&self, url: impl Into<String>) -> SqsQueue {
        SqsQueue::new(self.client.clone(), url)
    }

    /// The queue's ARN.
    pub async fn arn(&self) -> Result<String, String> {
        self.attribute(QueueAttributeName::QueueArn)
            .await?
            .ok_or_else(|| "the queue has no QueueArn".to_owned())
    }

    /// The dead-letter queue named by this queue's `RedrivePolicy`; `None` without one.
    pub async fn dead_letter_queue(&self) -> Result<Option<SqsQueue>, String> {
        let Some(policy) = self.attribute(QueueAttributeName::RedrivePolicy).await? else {
            return Ok(None);
        };
        let arn = dead_letter_target(&policy)?;
        let (account, name) = queue_of_arn(&arn)?;
        let url = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| format!("GetQueueUrl {arn}: {}", sqs_error_line(&self.url, &e)))?
            .queue_url
            .ok_or_else(|| format!("GetQueueUrl {arn} returned no URL"))?;
        Ok(Some(self.with_url(url)))
    }

    /// ReceiveMessage of up to `max` messages, waiting up to `wait_seconds` for the first,
    /// each invisible for `visibility_seconds`.
    fn receive_request(
        &self,
        max: i32,
        wait_seconds: i32,
        visibility_seconds: i32,
    ) -> ReceiveMessageFluentBuilder {
        self.client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .visibility_timeout(visibility_seconds)
    }

    async fn attribute(&self, name: QueueAttributeName) -> Result<Option<String>, String> {
        let mut out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(name.clone())
            .send()
            .await
            .map_err(|e| sqs_error_line(&self.url, &e))?;
        Ok(out
            .attributes
            .as_mut()
            .and_then(|a| a.remove(&name))
            .filter(|v| !v.is_empty()))
    }

    /// Up to `max` whole messages, each invisible for `visibility_seconds`: what
    /// [`SqsQueue::send`] needs to send a message again as it was sent.
    pub async fn receive_envelopes(
        &self,
        max: i32,
        wait_seconds: i32,
        visibility_seconds: i32,
    ) -> Result<Vec<Envelope>, String> {
        let out = self
            .receive_request(max, wait_seconds, visibility_seconds)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| sqs_error_line(&self.url, &e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|message| {
                let mut system = message.attributes.unwrap_or_default();
                Some(Envelope {
                    message_id: message.message_id.unwrap_or_default(),
                    receipt_handle: message.receipt_handle?,
                    body: message.body.unwrap_or_default(),
                    attributes: message.message_attributes.unwrap_or_default(),
                    trace_header: system.remove(&MessageSystemAttributeName::AwsTraceHeader),
                    group_id: system.remove(&MessageSystemAttributeName::MessageGroupId),
                    deduplication_id: system
                        .remove(&MessageSystemAttributeName::MessageDeduplicationId),
                })
            })
            .collect())
    }

    /// Sends each (index, envelope) entry to this queue in one batch: body, message
    /// attributes, trace header and (FIFO) group and deduplication ids as they were received.
    /// Returns the entries that failed.
    pub async fn send(&self, entries: &[(usize, &Envelope)]) -> Result<Vec<EntryFailure>, String> {
        let entries: Vec<SendMessageBatchRequestEntry> = entries
            .iter()
            .filter_map(|&(n, envelope)| {
                let trace = envelope.trace_header.as_ref().and_then(|header| {
                    MessageSystemAttributeValue::builder()
                        .data_type("String")
                        .string_value(header)
                        .build()
                        .ok()
                });
                SendMessageBatchRequestEntry::builder()
                    .id(n.to_string())
                    .message_body(&envelope.body)
                    .set_message_attributes(
                        (!envelope.attributes.is_empty()).then(|| envelope.attributes.clone()),
                    )
                    .set_message_system_attributes(trace.map(|value| {
                        HashMap::from([(MessageSystemAttributeNameForSends::AwsTraceHeader, value)])
                    }))
                    .set_message_group_id(envelope.group_id.clone())
                    .set_message_deduplication_id(envelope.deduplication_id.clone())
                    .build()
                    .ok()
            })
            .collect();
        batch_call!(self, send_message_batch, entries)
    }

    /// Starts SQS's move of every message of this queue (a dead-letter queue) to the queue
    /// `destination_arn`; the task's handle.
    pub async fn start_move_task(&self, destination_arn: &str) -> Result<String, MoveTaskError> {
        let source = self.arn().await.map_err(MoveTaskError::Failed)?;
        let out = self
            .client
            .start_message_move_task()
            .source_arn(&source)
            .destination_arn(destination_arn)
            .send()
            .await
            .map_err(|error| match unsupported_answer(&error) {
                Some(answer) => MoveTaskError::Unsupported(answer),
                None => MoveTaskError::Failed(sqs_error_line(&self.url, &error)),
            })?;
        Ok(out.task_handle.unwrap_or_default())
    }

    /// The latest message move task out of this queue, if any.
    pub async fn latest_move_task(&self) -> Result<Option<MoveTask>, String> {
        let source = self.arn().await?;
        let out = self
            .client
            .list_message_move_tasks()
            .source_arn(&source)
            .max_results(1)
            .send()
            .await
            .map_err(|e| sqs_error_line(&self.url, &e))?;
        Ok(out
            .results
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|t| MoveTask {
                task_handle: t.task_handle.clone(),
                status: t.status.clone().unwrap_or_default(),
                moved: u64::try_from(t.approximate_number_of_messages_moved).unwrap_or(0),
                to_move: t
                    .approximate_number_of_messages_to_move
                    .and_then(|n| u64::try_from(n).ok()),
                failure_reason: t.failure_reason,
            }))
    }
}

/// A message as received whole, to be sent to another queue as it was.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub attributes: HashMap<String, MessageAttributeValue>,
    pub trace_header: Option<String>,
    /// FIFO queues only.
    pub group_id: Option<String>,
    pub deduplication_id: Option<String>,
}

/// Why a message move task was not started.
#[derive(Debug, thiserror::Error)]
pub enum MoveTaskError {
    /// The endpoint does not offer message move tasks (an emulator, or a queue kind SQS
    /// cannot move): move the messages one batch at a time instead.
    #[error("message move tasks are not supported here: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Failed(String),
}

/// One message move task, as ListMessageMoveTasks reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveTask {
    pub task_handle: Option<String>,
    /// RUNNING, COMPLETED, CANCELLING, CANCELLED or FAILED.
    pub status: String,
    pub moved: u64,
    pub to_move: Option<u64>,
    pub failure_reason: Option<String>,
}

/// Error codes with which an endpoint says it does not know or support an operation.
const UNSUPPORTED_CODES: [&str; 5] = [
    "UnsupportedOperation",
    "AWS.SimpleQueueService.UnsupportedOperation",
    "InvalidAction",
    "UnknownOperationException",
    "NotImplemented",
];

/// How the endpoint said it does not offer the operation, if it did: one of
/// [`UNSUPPORTED_CODES`], HTTP 501, or a reply that is no SQS error at all (no error code, or
/// not even a parseable reply; SQS itself always sends a code), as emulators answer
/// operations they do not implement. A connection failure or a timeout is not an answer.
fn unsupported_answer<E: ProvideErrorMetadata>(
    error: &SdkError<E, HttpResponse>,
) -> Option<String> {
    let status = error.raw_response()?.status().as_u16();
    match (error, error.code()) {
        (SdkError::ServiceError(_), Some(code)) if UNSUPPORTED_CODES.contains(&code) => {
            Some(format!("HTTP {status} {code}"))
        }
        (SdkError::ServiceError(_), Some(code)) if status == 501 => {
            Some(format!("HTTP {status} {code}"))
        }
        (SdkError::ServiceError(_) | SdkError::ResponseError(_), None) => {
            Some(format!("HTTP {status} without an SQS error code"))
        }
        _ => None,
    }
}

/// The `deadLetterTargetArn` of a `RedrivePolicy` attribute.
fn dead_letter_target(policy: &str) -> Result<String, String> {
    let policy: serde_json::Value = serde_json::from_str(policy)
        .map_err(|e| format!("the queue's RedrivePolicy is not JSON ({e}): {policy}"))?;
    policy
        .get("deadLetterTargetArn")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("the queue's RedrivePolicy names no deadLetterTargetArn: {policy}"))
}

/// (account, queue name) of a queue ARN, `arn:<partition>:sqs:<region>:<account>:<name>`.
fn queue_of_arn(arn: &str) -> Result<(&str, &str), String> {
    match arn.split(':').collect::<Vec<_>>()[..] {
        ["arn", _, "sqs", _, account, name] if !account.is_empty() && !name.is_empty() => {
            Ok((account, name))
        }
        _ => Err(format!("not an SQS queue ARN: {arn}")),
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
            .receive_request(max, wait_seconds, visibility_seconds)
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
        in_batches(
            entries,
            |&(n, _)| n,
            |chunk| {
                let entries = chunk
                    .iter()
                    .filter_map(|&(n, handle)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(n.to_string())
                            .receipt_handle(handle)
                            .build()
                            .ok()
                    })
                    .collect();
                let sent = self
                    .client
                    .delete_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send();
                batch_call(&self.url, sent, DeleteMessageBatchOutput::failed)
            },
        )
        .await
    }

    async fn set_visibility(
        &self,
        entries: &[(usize, &str, i32)],
    ) -> Result<Vec<EntryFailure>, String> {
        in_batches(
            entries,
            |&(n, _, _)| n,
            |chunk| {
                let entries = chunk
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
                let sent = self
                    .client
                    .change_message_visibility_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send();
                batch_call(&self.url, sent, ChangeMessageVisibilityBatchOutput::failed)
            },
        )
        .await
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

/// Most entries SQS takes in one batch call.
const SQS_BATCH: usize = 10;
/// Batch calls in flight when a gathered burst is deleted or kept invisible.
const SQS_CALLS_AT_ONCE: usize = 8;

/// One batch call: the indices of its entries, and its failed entries or its error.
type CallResult = (Vec<usize>, Result<Vec<EntryFailure>, String>);

/// One batch call's failed entries, or its error in one line.
async fn batch_call<O, E>(
    url: &str,
    sent: impl Future<Output = Result<O, SdkError<E, HttpResponse>>>,
    failed: fn(&O) -> &[BatchResultErrorEntry],
) -> Result<Vec<EntryFailure>, String>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let out = sent.await.map_err(|e| sqs_error_line(url, &e))?;
    Ok(failures(failed(&out)))
}

/// Sends `entries` in batch calls of at most [`SQS_BATCH`] entries, each made by `call` from
/// its chunk, [`SQS_CALLS_AT_ONCE`] at a time, and merges their results (`index` gives an
/// entry's index, which a failed call fails).
async fn in_batches<'a, T, Call>(
    entries: &'a [T],
    index: impl Fn(&T) -> usize,
    call: impl Fn(&'a [T]) -> Call,
) -> Result<Vec<EntryFailure>, String>
where
    Call: Future<Output = Result<Vec<EntryFailure>, String>>,
{
    // Collected before the first await: a lazy iterator's closure held across it would make
    // the future's `Send` bound unprovable.
    let calls: Vec<_> = entries
        .chunks(SQS_BATCH)
        .map(|chunk| {
            let indices: Vec<usize> = chunk.iter().map(&index).collect();
            let sent = call(chunk);
            async move { (indices, sent.await) }
        })
        .collect();
    merge_results(
        futures::stream::iter(calls)
            .buffer_unordered(SQS_CALLS_AT_ONCE)
            .collect()
            .await,
    )
}

/// The failed entries of several batch calls, each call with the indices of its entries:
/// a failed call fails its entries. `Err` only when every call failed (the one call of a
/// normal batch: its error, as a single call reports it).
fn merge_results(results: Vec<CallResult>) -> Result<Vec<EntryFailure>, String> {
    let calls = results.len();
    let mut failed = Vec::new();
    let mut errors = Vec::new();
    for (indices, result) in results {
        match result {
            Ok(entries) => failed.extend(entries),
            Err(error) => {
                failed.extend(indices.into_iter().map(|n| (n, error.clone())));
                errors.push(error);
            }
        }
    }
    match errors.pop() {
        Some(error) if errors.len() + 1 == calls => Err(error),
        _ => Ok(failed),
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

    #[test]
    fn the_dead_letter_queue_comes_from_the_redrive_policy() {
        let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:sync-dlq","maxReceiveCount":"10"}"#;
        let arn = dead_letter_target(policy).unwrap();
        assert_eq!(queue_of_arn(&arn).unwrap(), ("123456789012", "sync-dlq"));
        assert!(dead_letter_target(r#"{"maxReceiveCount":"10"}"#).is_err());
        assert!(dead_letter_target("not json").is_err());
        assert!(queue_of_arn("arn:aws:sns:eu-west-1:123456789012:topic").is_err());
        assert!(queue_of_arn("sync-dlq").is_err());
    }
}
