//! sqs-lite against moto: one scenario of the queue semantics the daemon relies on, run
//! through the real `aws-sdk-sqs` client against both, must observe the same thing.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};

/// What the scenario saw, step by step.
type Observations = Vec<String>;

async fn receive(sqs: &Client, queue: &str, wait: i32) -> anyhow::Result<Vec<(String, String)>> {
    let out = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .wait_time_seconds(wait)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
        .send()
        .await?;
    Ok(out
        .messages()
        .iter()
        .map(|m| {
            let attributes = m.attributes();
            let count = attributes
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .cloned()
                .unwrap_or_default();
            let sent = attributes
                .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                .is_some_and(|s| s.parse::<i64>().is_ok());
            (
                format!("{} #{count} sent:{sent}", m.body().unwrap_or_default()),
                m.receipt_handle().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

async fn depth(sqs: &Client, queue: &str) -> anyhow::Result<String> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let get = |name| attributes.get(&name).cloned().unwrap_or_default();
    Ok(format!(
        "visible {} in flight {}",
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    ))
}

async fn scenario(endpoint: &str) -> anyhow::Result<Observations> {
    let sqs = Client::new(&testbed::sdk_config(endpoint).await);
    let mut seen = Observations::new();
    let (queue, dlq) = testbed::bed::create_queues(
        &sqs,
        &format!("fidelity-{}", testbed::unique_suffix()),
        2,
        Duration::from_secs(1),
    )
    .await?;

    sqs.send_message()
        .queue_url(&queue)
        .message_body("a")
        .send()
        .await?;
    let first = receive(&sqs, &queue, 1).await?;
    seen.push(format!(
        "received {:?}",
        first.iter().map(|m| &m.0).collect::<Vec<_>>()
    ));
    seen.push(depth(&sqs, &queue).await?);
    seen.push(format!(
        "while invisible {}",
        receive(&sqs, &queue, 0).await?.len()
    ));
    // Kept invisible past its timeout by ChangeMessageVisibility.
    sqs.change_message_visibility()
        .queue_url(&queue)
        .receipt_handle(&first[0].1)
        .visibility_timeout(3)
        .send()
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    seen.push(format!(
        "after extension {}",
        receive(&sqs, &queue, 0).await?.len()
    ));
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let second = receive(&sqs, &queue, 1).await?;
    seen.push(format!(
        "back {:?}",
        second.iter().map(|m| &m.0).collect::<Vec<_>>()
    ));
    // Visibility 0: at once; its third receive exceeds maxReceiveCount: off to the DLQ.
    sqs.change_message_visibility()
        .queue_url(&queue)
        .receipt_handle(&second[0].1)
        .visibility_timeout(0)
        .send()
        .await?;
    seen.push(format!(
        "third receive {}",
        receive(&sqs, &queue, 1).await?.len()
    ));
    let dead = receive(&sqs, &dlq, 1).await?;
    seen.push(format!(
        "dead-letter {:?}",
        dead.iter().map(|m| &m.0).collect::<Vec<_>>()
    ));

    // Delete in a batch; the queue is empty afterwards.
    sqs.send_message()
        .queue_url(&queue)
        .message_body("b")
        .send()
        .await?;
    let third = receive(&sqs, &queue, 1).await?;
    let out = sqs
        .delete_message_batch()
        .queue_url(&queue)
        .entries(
            DeleteMessageBatchRequestEntry::builder()
                .id("b")
                .receipt_handle(&third[0].1)
                .build()?,
        )
        .send()
        .await?;
    seen.push(format!(
        "deleted {} failed {}",
        out.successful().len(),
        out.failed().len()
    ));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    seen.push(depth(&sqs, &queue).await?);
    seen.push(format!(
        "after delete {}",
        receive(&sqs, &queue, 0).await?.len()
    ));

    // A long poll returns the message sent while it waits.
    let (got, ()) = tokio::join!(receive(&sqs, &queue, 10), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = sqs
            .send_message()
            .queue_url(&queue)
            .message_body("c")
            .send()
            .await;
    });
    seen.push(format!(
        "long poll {:?}",
        got?.iter().map(|m| m.0.clone()).collect::<Vec<_>>()
    ));
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_lite_behaves_as_moto_does() -> anyhow::Result<()> {
    let lite = testbed::SqsLite::start().await?;
    let moto = testbed::moto_endpoint().await?;
    let (from_moto, from_lite) = tokio::join!(scenario(&moto), scenario(lite.endpoint()));
    let from_moto = from_moto?;
    assert_eq!(
        from_moto,
        vec![
            "received [\"a #1 sent:true\"]",
            "visible 0 in flight 1",
            "while invisible 0",
            "after extension 0",
            "back [\"a #2 sent:true\"]",
            "third receive 0",
            // Redriven, not re-sent: the receive count goes on.
            "dead-letter [\"a #3 sent:true\"]",
            "deleted 1 failed 0",
            "visible 0 in flight 0",
            "after delete 0",
            "long poll [\"c #1 sent:true\"]",
        ],
        "moto no longer behaves as this scenario expects"
    );
    assert_eq!(from_lite?, from_moto);
    lite.stop().await
}
