//! sqs-lite: a fast in-memory Amazon SQS (standard queues) for BENCHMARKS.
//!
//! moto, the emulator the tests use, needs 30–50 ms per SQS request and about half a second
//! per ReceiveMessage once a thousand messages are queued, so a daemon benchmark against it
//! measures moto. sqs-lite answers in microseconds whatever the backlog, so that what a
//! benchmark sees is the daemon. The tests keep using moto; production talks to SQS.
//!
//! What it owns: the AWS JSON 1.0 protocol the SDK speaks (`POST /`, `X-Amz-Target:
//! AmazonSQS.<Operation>`; errors as status 400 with `{"__type": "com.amazonaws.sqs#<Code>"}`
//! and the `x-amzn-query-error` header) for CreateQueue, GetQueueUrl, GetQueueAttributes,
//! SendMessage(Batch), ReceiveMessage, DeleteMessage(Batch), ChangeMessageVisibility(Batch)
//! and PurgeQueue; and the queue semantics the daemon relies on: a received message is
//! invisible for its visibility timeout and comes back after it with its receive count
//! raised; only the latest receipt handle deletes or changes it; long polls return as soon
//! as a message is visible; a message received `maxReceiveCount` times moves to the
//! dead-letter queue of the redrive policy on its next receive. Messages are kept in a
//! B-tree by the instant they become visible, so no call scans the backlog.
//!
//! Not implemented: FIFO queues, message attributes, retention, signatures, permissions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use md5::{Digest as _, Md5};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use crate::served::Served;

const TARGET_PREFIX: &str = "AmazonSQS.";
const ACCOUNT: &str = "000000000000";
const REGION: &str = "us-east-1";
/// SQS's limits.
const MAX_BATCH: usize = 10;
const MAX_WAIT: u64 = 20;
const MAX_VISIBILITY: u64 = 43_200;

/// A running sqs-lite; it stops when dropped.
#[derive(Debug)]
pub struct SqsLite {
    served: Served,
}

impl SqsLite {
    /// Serves on `127.0.0.1:<free port>`.
    pub async fn start() -> anyhow::Result<SqsLite> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a port for sqs-lite")?;
        SqsLite::serve(listener)
    }

    /// Serves on `listener`, with no queues.
    pub fn serve(listener: tokio::net::TcpListener) -> anyhow::Result<SqsLite> {
        let address = listener
            .local_addr()
            .context("reading sqs-lite's address")?;
        let sqs = Arc::new(Sqs {
            endpoint: format!("http://{address}"),
            queues: Mutex::new(HashMap::new()),
        });
        let router = Router::new().route("/", post(handler)).with_state(sqs);
        Ok(SqsLite {
            served: Served::start(listener, router)?,
        })
    }

    /// `http://127.0.0.1:<port>`: the AWS endpoint URL (or a proxy's upstream).
    pub fn endpoint(&self) -> &str {
        self.served.url()
    }

    /// Stops accepting requests and waits for the server to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.served.stop("sqs-lite").await
    }
}

/// An SQS error: its code and whether the sender is at fault.
#[derive(Debug)]
struct SqsError {
    code: &'static str,
    /// The code of the older query protocol, which the SDK also reads.
    query_code: &'static str,
    message: String,
}

impl SqsError {
    fn new(code: &'static str, query_code: &'static str, message: impl Into<String>) -> Self {
        SqsError {
            code,
            query_code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        SqsError::new("InvalidParameterValue", "InvalidParameterValue", message)
    }

    fn no_queue() -> Self {
        SqsError::new(
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
            "The specified queue does not exist.",
        )
    }

    fn bad_receipt(handle: &str) -> Self {
        SqsError::new(
            "ReceiptHandleIsInvalid",
            "ReceiptHandleIsInvalid",
            format!("The input receipt handle \"{handle}\" is not a valid receipt handle."),
        )
    }

    fn into_response(self) -> Response {
        let body = json!({ "__type": format!("com.amazonaws.sqs#{}", self.code), "message": self.message });
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        if let Ok(value) = HeaderValue::from_str(&format!("{};Sender", self.query_code)) {
            headers.insert(HeaderName::from_static("x-amzn-query-error"), value);
        }
        response
    }
}

struct Sqs {
    endpoint: String,
    queues: Mutex<HashMap<String, Queue>>,
}

struct Queue {
    arn: String,
    created: i64,
    visibility_timeout: u64,
    delay_seconds: u64,
    /// Raw policy JSON, and (dead-letter queue name, maxReceiveCount).
    redrive: Option<(String, String, u32)>,
    messages: HashMap<String, Message>,
    /// Every message by (the instant it is visible from, arrival order).
    by_visibility: BTreeMap<(Instant, u64), String>,
    next_seq: u64,
    arrivals: Arc<Notify>,
}

struct Message {
    body: String,
    md5: String,
    sent_ms: i64,
    first_receive_ms: Option<i64>,
    receive_count: u32,
    /// The receipt handle of the latest receive.
    receipt: Option<String>,
    key: (Instant, u64),
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn md5_hex(body: &str) -> String {
    hex::encode(Md5::digest(body.as_bytes()))
}

impl Queue {
    fn new(name: &str, attributes: &Map<String, Value>) -> Result<Queue, SqsError> {
        let mut queue = Queue {
            arn: format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"),
            created: now_ms() / 1000,
            visibility_timeout: 30,
            delay_seconds: 0,
            redrive: None,
            messages: HashMap::new(),
            by_visibility: BTreeMap::new(),
            next_seq: 0,
            arrivals: Arc::new(Notify::new()),
        };
        queue.set_attributes(attributes)?;
        Ok(queue)
    }

    fn set_attributes(&mut self, attributes: &Map<String, Value>) -> Result<(), SqsError> {
        for (name, value) in attributes {
            let text = value.as_str().unwrap_or_default();
            let seconds = |max: u64| {
                text.parse::<u64>()
                    .ok()
                    .filter(|s| *s <= max)
                    .ok_or_else(|| {
                        SqsError::invalid(format!("Invalid value for the parameter {name}."))
                    })
            };
            match name.as_str() {
                "VisibilityTimeout" => self.visibility_timeout = seconds(MAX_VISIBILITY)?,
                "DelaySeconds" => self.delay_seconds = seconds(900)?,
                "RedrivePolicy" => {
                    let policy: Value = serde_json::from_str(text).map_err(|_| {
                        SqsError::invalid("Invalid value for the parameter RedrivePolicy.")
                    })?;
                    let target = policy["deadLetterTargetArn"].as_str().unwrap_or_default();
                    let count = match &policy["maxReceiveCount"] {
                        Value::String(s) => s.parse().ok(),
                        other => other.as_u64().and_then(|n| u32::try_from(n).ok()),
                    };
                    let (Some(dlq), Some(count)) =
                        (target.rsplit(':').next().filter(|n| !n.is_empty()), count)
                    else {
                        return Err(SqsError::invalid(
                            "Invalid value for the parameter RedrivePolicy.",
                        ));
                    };
                    self.redrive = Some((text.to_owned(), dlq.to_owned(), count.clamp(1, 1000)));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn push(&mut self, body: String, delay: u64, sent_ms: i64, now: Instant) -> (String, String) {
        let id = uuid::Uuid::new_v4().to_string();
        let key = (now + Duration::from_secs(delay), self.next_seq);
        self.next_seq += 1;
        let md5 = md5_hex(&body);
        self.by_visibility.insert(key, id.clone());
        self.messages.insert(
            id.clone(),
            Message {
                body,
                md5: md5.clone(),
                sent_ms,
                first_receive_ms: None,
                receive_count: 0,
                receipt: None,
                key,
            },
        );
        self.arrivals.notify_one();
        (id, md5)
    }

    /// Takes a message over from the queue that redrove it: the same message, with its
    /// id, sent time and receive count, visible at once.
    fn adopt(&mut self, id: String, mut message: Message, now: Instant) {
        message.key = (now, self.next_seq);
        self.next_seq += 1;
        message.receipt = None;
        self.by_visibility.insert(message.key, id.clone());
        self.messages.insert(id, message);
        self.arrivals.notify_one();
    }

    /// Makes message `id` visible from `at` (or at once).
    fn reschedule(&mut self, id: &str, at: Instant) {
        let Some(message) = self.messages.get_mut(id) else {
            return;
        };
        self.by_visibility.remove(&message.key);
        message.key = (at, message.key.1);
        self.by_visibility.insert(message.key, id.to_owned());
        if at <= Instant::now() {
            self.arrivals.notify_one();
        }
    }

    fn remove(&mut self, id: &str) -> Option<Message> {
        let message = self.messages.remove(id)?;
        self.by_visibility.remove(&message.key);
        Some(message)
    }

    /// The message a receipt handle names, if the handle is its latest.
    fn current(&self, handle: &str) -> Result<Option<String>, SqsError> {
        let Some((id, _)) = handle.split_once(':') else {
            return Err(SqsError::bad_receipt(handle));
        };
        Ok(self
            .messages
            .get_key_value(id)
            .filter(|(_, m)| m.receipt.as_deref() == Some(handle))
            .map(|(id, _)| id.clone()))
    }

    fn counts(&self, now: Instant) -> (usize, usize, usize) {
        let visible = self.by_visibility.range(..=(now, u64::MAX)).count();
        let in_flight = self
            .messages
            .values()
            .filter(|m| m.key.0 > now && m.receive_count > 0)
            .count();
        (
            visible,
            in_flight,
            self.messages.len() - visible - in_flight,
        )
    }
}

async fn handler(State(sqs): State<Arc<Sqs>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let result = match (
        target.strip_prefix(TARGET_PREFIX),
        serde_json::from_slice::<Value>(&body),
    ) {
        (Some(operation), Ok(request)) => sqs.call(operation, request).await,
        (None, _) => Err(SqsError::new(
            "UnknownOperationException",
            "UnknownOperationException",
            format!("unknown operation {target:?}"),
        )),
        (_, Err(e)) => Err(SqsError::invalid(format!(
            "the request body is not JSON: {e}"
        ))),
    };
    match result {
        Ok(out) => {
            let mut response = Response::new(Body::from(out.to_string()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-amz-json-1.0"),
            );
            response
        }
        Err(err) => err.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    id: String,
    #[serde(default)]
    message_body: Option<String>,
    #[serde(default)]
    delay_seconds: Option<u64>,
    #[serde(default)]
    receipt_handle: Option<String>,
    #[serde(default)]
    visibility_timeout: Option<u64>,
}

/// A batch's entries, checked as SQS checks them.
fn entries(request: &Value) -> Result<Vec<Entry>, SqsError> {
    let entries: Vec<Entry> = serde_json::from_value(request["Entries"].clone())
        .map_err(|e| SqsError::invalid(format!("Entries: {e}")))?;
    if entries.is_empty() {
        return Err(SqsError::new(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            "There should be at least one SendMessageBatchRequestEntry in the request.",
        ));
    }
    if entries.len() > MAX_BATCH {
        return Err(SqsError::new(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            format!(
                "Maximum number of entries per request are {MAX_BATCH}. You have sent {}.",
                entries.len()
            ),
        ));
    }
    let mut ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(SqsError::new(
            "BatchEntryIdsNotDistinct",
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            "Two or more batch entries in the request have the same Id.",
        ));
    }
    Ok(entries)
}

fn failed(id: &str, error: SqsError) -> Value {
    json!({ "Id": id, "SenderFault": true, "Code": error.code, "Message": error.message })
}

/// `{"Successful": [...], "Failed": [...]}` from per-entry results.
fn batch_result(results: Vec<(String, Result<Value, SqsError>)>) -> Value {
    let (mut successful, mut failures) = (Vec::new(), Vec::new());
    for (id, result) in results {
        match result {
            Ok(value) => successful.push(value),
            Err(error) => failures.push(failed(&id, error)),
        }
    }
    json!({ "Successful": successful, "Failed": failures })
}

impl Sqs {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Queue>> {
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{ACCOUNT}/{name}", self.endpoint)
    }

    /// The queue name of a request's `QueueUrl` (any host: clients may go through a proxy).
    fn queue_name(request: &Value) -> Result<String, SqsError> {
        let url = request["QueueUrl"]
            .as_str()
            .ok_or_else(SqsError::no_queue)?;
        url.rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .ok_or_else(SqsError::no_queue)
    }

    async fn call(&self, operation: &str, request: Value) -> Result<Value, SqsError> {
        if operation == "ReceiveMessage" {
            return self.receive(&request).await;
        }
        let now = Instant::now();
        let mut queues = self.lock();
        if operation == "CreateQueue" {
            let name = request["QueueName"].as_str().unwrap_or_default();
            if name.is_empty()
                || name.len() > 80
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(SqsError::invalid(
                    "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
                ));
            }
            let empty = Map::new();
            let attributes = request["Attributes"].as_object().unwrap_or(&empty);
            if !queues.contains_key(name) {
                queues.insert(name.to_owned(), Queue::new(name, attributes)?);
            }
            return Ok(json!({ "QueueUrl": self.url(name) }));
        }
        if operation == "GetQueueUrl" {
            let name = request["QueueName"].as_str().unwrap_or_default();
            return match queues.contains_key(name) {
                true => Ok(json!({ "QueueUrl": self.url(name) })),
                false => Err(SqsError::no_queue()),
            };
        }
        let name = Sqs::queue_name(&request)?;
        let queue = queues.get_mut(&name).ok_or_else(SqsError::no_queue)?;
        match operation {
            "GetQueueAttributes" => {
                let (visible, in_flight, delayed) = queue.counts(now);
                let mut all = json!({
                    "QueueArn": queue.arn,
                    "ApproximateNumberOfMessages": visible.to_string(),
                    "ApproximateNumberOfMessagesNotVisible": in_flight.to_string(),
                    "ApproximateNumberOfMessagesDelayed": delayed.to_string(),
                    "VisibilityTimeout": queue.visibility_timeout.to_string(),
                    "DelaySeconds": queue.delay_seconds.to_string(),
                    "CreatedTimestamp": queue.created.to_string(),
                });
                if let Some((policy, _, _)) = &queue.redrive {
                    all["RedrivePolicy"] = json!(policy);
                }
                let wanted: Vec<&str> = request["AttributeNames"]
                    .as_array()
                    .map(|names| names.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let attributes: Map<String, Value> = all
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| wanted.contains(&"All") || wanted.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Ok(json!({ "Attributes": attributes }))
            }
            "SetQueueAttributes" => {
                let empty = Map::new();
                queue.set_attributes(request["Attributes"].as_object().unwrap_or(&empty))?;
                Ok(json!({}))
            }
            "SendMessage" => {
                let body = request["MessageBody"]
                    .as_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| {
                        SqsError::new(
                            "MissingParameter",
                            "MissingParameter",
                            "The request must contain the parameter MessageBody.",
                        )
                    })?;
                let delay = request["DelaySeconds"]
                    .as_u64()
                    .unwrap_or(queue.delay_seconds);
                let (id, md5) = queue.push(body.to_owned(), delay, now_ms(), now);
                Ok(json!({ "MessageId": id, "MD5OfMessageBody": md5 }))
            }
            "SendMessageBatch" => {
                let sent_ms = now_ms();
                let results = entries(&request)?
                    .into_iter()
                    .map(|entry| {
                        let result = match entry.message_body.filter(|b| !b.is_empty()) {
                            Some(body) => {
                                let delay = entry.delay_seconds.unwrap_or(queue.delay_seconds);
                                let (message_id, md5) = queue.push(body, delay, sent_ms, now);
                                Ok(json!({ "Id": entry.id, "MessageId": message_id, "MD5OfMessageBody": md5 }))
                            }
                            None => Err(SqsError::invalid("The message body must not be empty.")),
                        };
                        (entry.id, result)
                    })
                    .collect();
                Ok(batch_result(results))
            }
            "DeleteMessage" => {
                let handle = request["ReceiptHandle"].as_str().unwrap_or_default();
                // An outdated handle succeeds without deleting, as SQS documents.
                if let Some(id) = queue.current(handle)? {
                    queue.remove(&id);
                }
                Ok(json!({}))
            }
            "DeleteMessageBatch" => {
                let results = entries(&request)?
                    .into_iter()
                    .map(|entry| {
                        let handle = entry.receipt_handle.unwrap_or_default();
                        let result = queue.current(&handle).map(|id| {
                            if let Some(id) = id {
                                queue.remove(&id);
                            }
                            json!({ "Id": entry.id })
                        });
                        (entry.id, result)
                    })
                    .collect();
                Ok(batch_result(results))
            }
            "ChangeMessageVisibility" => {
                let handle = request["ReceiptHandle"].as_str().unwrap_or_default();
                let timeout = request["VisibilityTimeout"].as_u64();
                change_visibility(queue, handle, timeout, now)?;
                Ok(json!({}))
            }
            "ChangeMessageVisibilityBatch" => {
                let results = entries(&request)?
                    .into_iter()
                    .map(|entry| {
                        let handle = entry.receipt_handle.unwrap_or_default();
                        let result =
                            change_visibility(queue, &handle, entry.visibility_timeout, now)
                                .map(|()| json!({ "Id": entry.id }));
                        (entry.id, result)
                    })
                    .collect();
                Ok(batch_result(results))
            }
            "PurgeQueue" => {
                queue.messages.clear();
                queue.by_visibility.clear();
                Ok(json!({}))
            }
            other => Err(SqsError::new(
                "UnknownOperationException",
                "UnknownOperationException",
                format!("sqs-lite does not implement {other}"),
            )),
        }
    }

    /// ReceiveMessage: takes what is visible now, else waits (long poll) until a message
    /// arrives or becomes visible, or the wait time is over.
    async fn receive(&self, request: &Value) -> Result<Value, SqsError> {
        let name = Sqs::queue_name(request)?;
        let max = request["MaxNumberOfMessages"].as_u64().unwrap_or(1);
        if !(1..=MAX_BATCH as u64).contains(&max) {
            return Err(SqsError::invalid(format!(
                "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided."
            )));
        }
        let wait = request["WaitTimeSeconds"].as_u64().unwrap_or(0);
        if wait > MAX_WAIT {
            return Err(SqsError::invalid(format!(
                "Value {wait} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided."
            )));
        }
        let names: Vec<&str> = ["AttributeNames", "MessageSystemAttributeNames"]
            .iter()
            .filter_map(|key| request[*key].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let deadline = Instant::now() + Duration::from_secs(wait);
        loop {
            let (messages, arrivals, next_visible) = {
                let mut queues = self.lock();
                let queue = queues.get(&name).ok_or_else(SqsError::no_queue)?;
                let visibility = request["VisibilityTimeout"]
                    .as_u64()
                    .unwrap_or(queue.visibility_timeout);
                let messages = take(&mut queues, &name, max as usize, visibility, &names)?;
                let queue = queues.get(&name).ok_or_else(SqsError::no_queue)?;
                let next = queue.by_visibility.keys().next().map(|(at, _)| *at);
                (messages, queue.arrivals.clone(), next)
            };
            let now = Instant::now();
            if !messages.is_empty() || now >= deadline {
                return Ok(json!({ "Messages": messages }));
            }
            let wake = next_visible.map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                () = arrivals.notified() => {}
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }
}

/// Receives up to `max` visible messages of queue `name`, moving those received
/// `maxReceiveCount` times to the dead-letter queue instead.
fn take(
    queues: &mut HashMap<String, Queue>,
    name: &str,
    max: usize,
    visibility: u64,
    names: &[&str],
) -> Result<Vec<Value>, SqsError> {
    let now = Instant::now();
    let queue = queues.get_mut(name).ok_or_else(SqsError::no_queue)?;
    let visible: Vec<String> = queue
        .by_visibility
        .range(..=(now, u64::MAX))
        .map(|(_, id)| id.clone())
        .collect::<Vec<_>>();
    let mut out = Vec::new();
    let mut dead = Vec::new();
    for id in visible {
        if out.len() == max {
            break;
        }
        let over = queue.redrive.as_ref().is_some_and(|(_, _, max_receives)| {
            queue
                .messages
                .get(&id)
                .is_some_and(|m| m.receive_count >= *max_receives)
        });
        if over {
            if let Some(message) = queue.remove(&id) {
                dead.push((id, message));
            }
            continue;
        }
        let Some(message) = queue.messages.get_mut(&id) else {
            continue;
        };
        message.receive_count += 1;
        let received_ms = now_ms();
        message.first_receive_ms.get_or_insert(received_ms);
        let handle = format!("{id}:{}", uuid::Uuid::new_v4().simple());
        message.receipt = Some(handle.clone());
        let all = |n: &str| names.contains(&"All") || names.contains(&n);
        let mut attributes = Map::new();
        if all("ApproximateReceiveCount") {
            attributes.insert(
                "ApproximateReceiveCount".into(),
                json!(message.receive_count.to_string()),
            );
        }
        if all("SentTimestamp") {
            attributes.insert("SentTimestamp".into(), json!(message.sent_ms.to_string()));
        }
        if all("ApproximateFirstReceiveTimestamp") {
            let first = message.first_receive_ms.unwrap_or(received_ms);
            attributes.insert(
                "ApproximateFirstReceiveTimestamp".into(),
                json!(first.to_string()),
            );
        }
        let mut value = json!({
            "MessageId": id,
            "ReceiptHandle": handle,
            "MD5OfBody": message.md5,
            "Body": message.body,
        });
        if !attributes.is_empty() {
            value["Attributes"] = Value::Object(attributes);
        }
        out.push(value);
        queue.reschedule(&id, now + Duration::from_secs(visibility));
    }
    if let Some((_, dlq, _)) = queue.redrive.clone()
        && let Some(target) = queues.get_mut(&dlq)
    {
        for (id, message) in dead {
            target.adopt(id, message, now);
        }
    }
    Ok(out)
}

/// ChangeMessageVisibility of one message: only its latest receipt handle, only while in flight.
fn change_visibility(
    queue: &mut Queue,
    handle: &str,
    timeout: Option<u64>,
    now: Instant,
) -> Result<(), SqsError> {
    let timeout = timeout.filter(|t| *t <= MAX_VISIBILITY).ok_or_else(|| {
        SqsError::invalid("VisibilityTimeout must be between 0 and 43200 seconds.")
    })?;
    let id = queue
        .current(handle)?
        .ok_or_else(|| SqsError::bad_receipt(handle))?;
    if queue.messages.get(&id).is_none_or(|m| m.key.0 <= now) {
        return Err(SqsError::new(
            "MessageNotInflight",
            "AWS.SimpleQueueService.MessageNotInflight",
            "The message referred to is not in flight.",
        ));
    }
    queue.reschedule(&id, now + Duration::from_secs(timeout));
    Ok(())
}
