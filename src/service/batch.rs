//! Batch isolation for the group-commit writers (publish, directory claims).
//!
//! Many callers' requests share one transaction, for throughput. One request the
//! database refuses would fail the whole transaction, and with it every other
//! caller in it, other tenants included (a NUL in a title did exactly that on
//! PostgreSQL). So a failed batch is split in halves, in order, and each half is
//! committed again, down to single requests: only the guilty one fails, for about
//! 2·log2(n) extra transactions per guilty request rather than n.

use std::future::Future;

use super::ServiceError;
use crate::store::StoreError;

/// Commits `items` through `commit` (one transaction per call, one outcome per
/// item in order), isolating the items that make it fail. Ranges are committed
/// left to right, so commit order (and id order) stays the order of `items`.
/// When the database is unavailable, everything not yet committed fails at once:
/// splitting would only wait for the timeout again and again.
pub async fn commit_isolated<'a, T, O, F, Fut>(
    items: &'a [T],
    mut commit: F,
) -> Vec<Result<O, ServiceError>>
where
    F: FnMut(&'a [T]) -> Fut,
    Fut: Future<Output = Result<Vec<O>, StoreError>>,
{
    let mut results: Vec<Option<Result<O, ServiceError>>> = items.iter().map(|_| None).collect();
    // A stack of ranges still to commit; the left half is pushed last, so it goes first.
    let mut todo = vec![(0, items.len())];
    while let Some((lo, hi)) = todo.pop() {
        if lo == hi {
            continue;
        }
        match commit(&items[lo..hi]).await {
            Ok(outcomes) => {
                for (slot, outcome) in results[lo..hi].iter_mut().zip(outcomes) {
                    *slot = Some(Ok(outcome));
                }
            }
            Err(e @ StoreError::Unavailable(_)) => {
                tracing::warn!(error = %e, items = hi - lo, "batch failed: database unavailable");
                let left = std::iter::once((lo, hi)).chain(todo.drain(..));
                for (a, b) in left.collect::<Vec<_>>() {
                    results[a..b]
                        .iter_mut()
                        .for_each(|r| *r = Some(Err(failed(&e))));
                }
            }
            Err(e) if hi - lo == 1 => {
                tracing::warn!(error = %e, "batch item refused by the database");
                results[lo] = Some(Err(failed(&e)));
            }
            Err(e) => {
                tracing::warn!(error = %e, items = hi - lo, "batch failed; committing it in halves");
                let mid = lo + (hi - lo) / 2;
                todo.push((mid, hi));
                todo.push((lo, mid));
            }
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ServiceError::Internal(
                    "a committed batch lacks an outcome".into(),
                ))
            })
        })
        .collect()
}

/// A failed commit as each of its callers is answered: 503 or 500 (the detail is
/// logged, not returned).
fn failed(e: &StoreError) -> ServiceError {
    match e {
        StoreError::Unavailable(_) => ServiceError::Unavailable(e.to_string()),
        _ => ServiceError::Internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "database" that refuses any batch holding a negative number and counts
    /// its transactions.
    async fn run(
        items: &[i32],
        unavailable_at: Option<usize>,
    ) -> (Vec<Result<i32, String>>, usize) {
        let mut calls = 0;
        let results = commit_isolated(items, |chunk: &[i32]| {
            calls += 1;
            let n = calls;
            async move {
                if unavailable_at == Some(n) {
                    return Err(StoreError::Unavailable("down".into()));
                }
                if chunk.iter().any(|i| *i < 0) {
                    return Err(StoreError::Internal("refused".into()));
                }
                Ok(chunk.to_vec())
            }
        })
        .await;
        let results = results
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
        (results, calls)
    }

    #[tokio::test]
    async fn only_the_guilty_items_fail_in_order_with_few_retries() {
        let items: Vec<i32> = (0..1000)
            .map(|i| if i == 637 || i == 12 { -1 } else { i })
            .collect();
        let (results, calls) = run(&items, None).await;
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.is_err(), i == 637 || i == 12, "{i}: {r:?}");
            if let Ok(v) = r {
                assert_eq!(*v, i as i32);
            }
        }
        // Two guilty items among 1000: a few dozen transactions, not a thousand.
        assert!(calls <= 1 + 2 * 2 * 10, "{calls} transactions");
        let (clean, calls) = run(&[1, 2, 3], None).await;
        assert_eq!((clean.len(), calls), (3, 1));
    }

    #[tokio::test]
    async fn an_unavailable_database_fails_the_rest_at_once() {
        let items = [1, -1, 2, 3, 4, 5, 6, 7];
        let (results, calls) = run(&items, Some(2)).await;
        assert_eq!(calls, 2, "no retry after unavailable");
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().is_err_and(|e| e.contains("unavailable"))),
            "{results:?}"
        );
    }
}
