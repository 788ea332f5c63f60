//! Splitting a write the mirror rejects because of some record's data, so that every other
//! record still commits.
//!
//! PostgreSQL refuses a whole statement for one bad value. [`bisect`] sends the records in one
//! write; when the answer blames the data ([`HasuraError::blames_data`]) it sends each half on
//! its own, and so on down to the single records that are refused. With k bad records among n
//! that is at most 1 + 2·k·⌈log₂ n⌉ writes, and one when nothing is wrong.

use std::future::Future;

use super::HasuraError;

/// What a bisected write did.
#[derive(Debug)]
pub struct Bisected<T, O> {
    /// What each committed write answered, in the order of the records.
    pub committed: Vec<O>,
    /// The records refused on their own, each with the mirror's answer.
    pub rejected: Vec<(T, HasuraError)>,
    /// Writes sent.
    pub writes: usize,
}

/// Writes `records` with `write`, splitting them in halves as long as the mirror blames their
/// data. Any other error ends the split and is returned; the parts committed until then stay
/// committed (the writes are idempotent upserts, so the caller may send them all again).
pub async fn bisect<T, O, F, Fut>(
    records: Vec<T>,
    mut write: F,
) -> Result<Bisected<T, O>, HasuraError>
where
    F: FnMut(&[T]) -> Fut,
    Fut: Future<Output = Result<O, HasuraError>>,
{
    let mut done = Bisected {
        committed: Vec::new(),
        rejected: Vec::new(),
        writes: 0,
    };
    // A stack of parts still to write, the next one on top, so records keep their order.
    let mut parts = vec![records];
    while let Some(mut part) = parts.pop() {
        if part.is_empty() {
            continue;
        }
        done.writes += 1;
        match write(&part).await {
            Ok(answer) => done.committed.push(answer),
            Err(error) if error.blames_data() => match part.len() {
                1 => done
                    .rejected
                    .extend(part.pop().map(|record| (record, error))),
                len => {
                    let second = part.split_off(len / 2);
                    parts.push(second);
                    parts.push(part);
                }
            },
            Err(error) => return Err(error),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn rejected(code: &str) -> HasuraError {
        HasuraError::GraphQl {
            operation: "UpsertUsers".into(),
            code: code.into(),
            path: Some("$.selectionSet.insert_cognito_users.args.objects".into()),
            message: "invalid input".into(),
        }
    }

    /// Bisects `0..n` against a mirror refusing any write that holds one of `bad`; checks
    /// that exactly the bad ones are rejected, every other one committed once, and the bound.
    async fn isolate(n: u32, bad: &[u32]) {
        let writes = Cell::new(0usize);
        let done = bisect((0..n).collect(), |part: &[u32]| {
            writes.set(writes.get() + 1);
            let refused = part.iter().any(|r| bad.contains(r));
            let part = part.to_vec();
            async move {
                if refused {
                    Err(rejected("data-exception"))
                } else {
                    Ok(part)
                }
            }
        })
        .await
        .unwrap();
        let committed: Vec<u32> = done.committed.concat();
        let rejected: Vec<u32> = done.rejected.iter().map(|(r, _)| *r).collect();
        let expected: Vec<u32> = (0..n).filter(|r| !bad.contains(r)).collect();
        assert_eq!(committed, expected, "n={n} bad={bad:?}");
        assert_eq!(rejected, bad, "n={n} bad={bad:?}");
        assert!(done.rejected.iter().all(|(_, e)| e.blames_data()));
        assert_eq!(done.writes, writes.get());
        let depth = (f64::from(n)).log2().ceil() as usize;
        let bound = 1 + 2 * bad.len() * depth;
        assert!(
            done.writes <= bound,
            "n={n} bad={bad:?}: {} writes, bound {bound}",
            done.writes
        );
    }

    #[tokio::test]
    async fn isolates_one_and_two_bad_records_in_few_writes() {
        for n in [1, 2, 7, 10] {
            for bad in 0..n {
                isolate(n, &[bad]).await;
                for other in bad + 1..n {
                    isolate(n, &[bad, other]).await;
                }
            }
        }
    }

    #[tokio::test]
    async fn a_healthy_batch_is_one_write_and_an_empty_one_none() {
        isolate(10, &[]).await;
        let done = bisect(Vec::<u32>::new(), |_: &[u32]| async { Ok(()) })
            .await
            .unwrap();
        assert_eq!(done.writes, 0);
    }

    #[tokio::test]
    async fn an_error_that_does_not_blame_the_data_ends_the_split() {
        let writes = Cell::new(0);
        let error = bisect((0..8).collect(), |part: &[u32]| {
            writes.set(writes.get() + 1);
            let first = writes.get() == 1;
            let bad = part.contains(&3);
            async move {
                match (first, bad) {
                    (true, _) => Err(rejected("constraint-violation")),
                    (false, true) => Err(rejected("unexpected")),
                    (false, false) => Ok(()),
                }
            }
        })
        .await
        .unwrap_err();
        assert_eq!(error.code(), Some("unexpected"));
        assert_eq!(writes.get(), 2, "the first half holds 3 and fails for good");
    }
}
