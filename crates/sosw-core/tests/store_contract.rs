//! The TaskStore contract: the same checks run against the in-memory store and against DynamoDB
//! (moto with serialised writes, so conditional writes are atomic as DynamoDB's are). They pin
//! what sosw relies on: conditional claim, all-or-nothing transactions with per-item cancellation
//! reasons, the greenfield index order, `Limit` applied before filters, pagination, counts.

use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use sosw_core::task::store::{
    Cond, DynamoStore, FailureKind, IndexQuery, MemoryStore, Range, TaskStore, TxItem, Update, Written,
};
use sosw_core::task::Item;
use sosw_core::TaskConfig;
use sosw_test_support::LocalAws;
use std::sync::Arc;

const TASKS: &str = "sosw_tasks";
const CLOSED: &str = "sosw_closed_tasks";
const RETRY: &str = "sosw_retry_tasks";
const INDEX: &str = "sosw_tasks_greenfield";

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(id: &str) -> Item {
    Item::from([("task_id".to_string(), s(id))])
}

fn row(id: &str, labourer: &str, greenfield: i64) -> Item {
    Item::from([
        ("task_id".to_string(), s(id)),
        ("labourer_id".to_string(), s(labourer)),
        ("greenfield".to_string(), n(greenfield)),
        ("payload".to_string(), s("{}")),
    ])
}

fn queue(labourer: &str) -> IndexQuery {
    IndexQuery::new(TASKS, Some(INDEX), "labourer_id", s(labourer))
}

async fn ids_of(store: &dyn TaskStore, q: IndexQuery) -> Vec<Vec<String>> {
    store
        .query(q)
        .map(|p| {
            p.unwrap()
                .items
                .iter()
                .map(|i| i["task_id"].as_s().unwrap().clone())
                .collect()
        })
        .collect()
        .await
}

async fn conditional_claim_wins_once(store: Arc<dyn TaskStore>) {
    store.batch_put(TASKS, vec![row("a", "w", 1000)]).await.unwrap();
    let claim = || Update {
        set: vec![("greenfield".into(), n(5_000_000_000))],
        remove: vec![],
        increment: vec!["attempts".into()],
        append: vec![],
    };
    let queued = || vec![Cond::Lt("greenfield".into(), n(2_000_000_000))];
    let claims = (0..12).map(|_| {
        let store = store.clone();
        async move { store.update(TASKS, key("a"), claim(), queued()).await.unwrap() }
    });
    let outcomes = futures::future::join_all(claims).await;
    assert_eq!(
        outcomes.iter().filter(|o| **o == Written::Done).count(),
        1,
        "{outcomes:?}"
    );
    let got = store.get(TASKS, key("a")).await.unwrap().unwrap();
    assert_eq!(got["attempts"], n(1), "the increment starts from 0 when absent");
    assert_eq!(got["greenfield"], n(5_000_000_000));
    // An update conditioned on an existing row does not create one.
    let exists = vec![Cond::Exists("task_id".into())];
    let out = store.update(TASKS, key("ghost"), claim(), exists).await.unwrap();
    assert!(matches!(out, Written::ConditionFailed(_)));
    assert!(store.get(TASKS, key("ghost")).await.unwrap().is_none());
    // Removing and comparing numbers by value.
    let release = Update {
        set: vec![("greenfield".into(), n(1000))],
        remove: vec!["attempts".into()],
        increment: vec![],
        append: vec![],
    };
    let ours = vec![Cond::Eq(
        "greenfield".into(),
        AttributeValue::N("5000000000.0".into()),
    )];
    assert_eq!(
        store.update(TASKS, key("a"), release, ours).await.unwrap(),
        Written::Done
    );
    let got = store.get(TASKS, key("a")).await.unwrap().unwrap();
    assert!(!got.contains_key("attempts"));
}

/// A report's meta event rides on the task's own conditional write: appended in order to a list
/// attribute created by the first append; a failed condition appends nothing; a non-list
/// attribute is refused, not overwritten.
async fn conditional_appends_keep_order(store: Arc<dyn TaskStore>) {
    store.batch_put(TASKS, vec![row("a", "w", 1000)]).await.unwrap();
    let event = |action: &str| {
        AttributeValue::M(Item::from([
            ("task_id".to_string(), s("a")),
            ("action".to_string(), s(action)),
        ]))
    };
    let report = |action: &str| Update {
        set: vec![("completed_at".into(), n(7))],
        append: vec![("sosw_meta_pending".into(), vec![event(action)])],
        ..Update::default()
    };
    let exists = || vec![Cond::Exists("task_id".into())];
    for action in ["marked_as_failed", "marked_as_completed"] {
        let out = store
            .update(TASKS, key("a"), report(action), exists())
            .await
            .unwrap();
        assert_eq!(out, Written::Done);
    }
    let refused = store
        .update(
            TASKS,
            key("a"),
            report("late"),
            vec![Cond::NotExists("completed_at".into())],
        )
        .await
        .unwrap();
    assert!(matches!(refused, Written::ConditionFailed(_)));
    let got = store.get(TASKS, key("a")).await.unwrap().unwrap();
    assert_eq!(
        got["sosw_meta_pending"],
        AttributeValue::L(vec![event("marked_as_failed"), event("marked_as_completed")])
    );
    let not_a_list = Update {
        append: vec![("payload".into(), vec![event("x")])],
        ..Update::default()
    };
    let err = store
        .update(TASKS, key("a"), not_a_list, exists())
        .await
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::Validation, "{err:?}");
    let got = store.get(TASKS, key("a")).await.unwrap().unwrap();
    assert_eq!(got["payload"], s("{}"));
}

async fn transactions_are_all_or_nothing_with_reasons(store: Arc<dyn TaskStore>) {
    store
        .batch_put(TASKS, vec![row("a", "w", 1000), row("b", "w", 2000)])
        .await
        .unwrap();
    let archive = |id: &str, greenfield: i64| {
        let mut closed = row(id, "w", greenfield);
        closed.insert("labourer_id_task_status".into(), s("w_1"));
        closed.insert("closed_at".into(), n(10));
        [
            TxItem::Put {
                table: CLOSED.into(),
                item: closed,
                condition: vec![],
            },
            TxItem::Delete {
                table: TASKS.into(),
                key: key(id),
                condition: vec![Cond::Eq("greenfield".into(), n(greenfield))],
            },
        ]
    };
    // `b` changed since it was read (greenfield 2000, not 9): nothing is written.
    let mut items: Vec<TxItem> = archive("a", 1000).into();
    items.extend(archive("b", 9));
    let out = store.transact(items, None).await.unwrap();
    assert_eq!(out, Written::ConditionFailed(vec![false, false, false, true]));
    assert!(
        store.get(TASKS, key("a")).await.unwrap().is_some(),
        "a stays queued"
    );
    assert!(
        store.get(CLOSED, key("a")).await.unwrap().is_none(),
        "a not archived"
    );
    // Unchanged: both move.
    let mut items: Vec<TxItem> = archive("a", 1000).into();
    items.extend(archive("b", 2000));
    assert_eq!(store.transact(items, None).await.unwrap(), Written::Done);
    assert!(store.get(TASKS, key("b")).await.unwrap().is_none());
    assert_eq!(
        store.get(CLOSED, key("b")).await.unwrap().unwrap()["closed_at"],
        n(10)
    );
    // A check on another table refuses the write when the id exists there.
    let retry_key = Item::from([
        ("labourer_id".to_string(), s("w")),
        ("task_id".to_string(), s("a")),
    ]);
    let absent = || vec![Cond::NotExists("task_id".into())];
    let items = vec![
        TxItem::Put {
            table: TASKS.into(),
            item: row("a", "w", 3000),
            condition: absent(),
        },
        TxItem::Check {
            table: CLOSED.into(),
            key: key("a"),
            condition: absent(),
        },
        TxItem::Check {
            table: RETRY.into(),
            key: retry_key,
            condition: absent(),
        },
    ];
    let out = store.transact(items, Some("token-1".into())).await.unwrap();
    assert_eq!(out, Written::ConditionFailed(vec![false, true, false]));
    assert!(store.get(TASKS, key("a")).await.unwrap().is_none());
}

async fn the_greenfield_index_orders_limits_before_filters_and_pages(store: Arc<dyn TaskStore>) {
    let mut rows = vec![
        row("e", "w", 5000),
        row("c", "w", 3000),
        row("a", "w", 1000),
        row("d", "w", 4000),
        row("b", "w", 2000),
        row("x", "other", 1500),
    ];
    for r in &mut rows[3..5] {
        r.insert("completed_at".into(), n(7));
    }
    // Not in the index: no greenfield.
    let mut sparse = row("s", "w", 0);
    sparse.remove("greenfield");
    rows.push(sparse);
    store.batch_put(TASKS, rows).await.unwrap();

    let all = queue("w").range("greenfield", None);
    assert_eq!(
        ids_of(&*store, all.clone()).await.concat(),
        ["a", "b", "c", "d", "e"]
    );
    let mut newest = all.clone();
    newest.forward = false;
    newest.page_size = Some(1);
    assert_eq!(ids_of(&*store, newest).await[0], ["e"]);
    let below = queue("w").range("greenfield", Some(Range::Lt(n(3000))));
    assert_eq!(ids_of(&*store, below).await.concat(), ["a", "b"]);
    let between = queue("w").range("greenfield", Some(Range::Between(n(2000), n(4000))));
    assert_eq!(ids_of(&*store, between.clone()).await.concat(), ["b", "c", "d"]);

    // Limit 2 evaluates a, b (b and d are completed) then c, d then e: the filter runs on each page.
    let mut paged = all.filter(vec![Cond::NotExists("completed_at".into())]);
    paged.page_size = Some(2);
    assert_eq!(
        ids_of(&*store, paged.clone()).await,
        vec![vec!["a"], vec!["c"], vec!["e"]]
    );
    let d_and_b: Vec<_> = {
        let mut q = queue("w").range("greenfield", Some(Range::Ge(n(0))));
        q.filter = vec![Cond::Exists("completed_at".into())];
        q.page_size = Some(3);
        ids_of(&*store, q).await
    };
    assert_eq!(d_and_b, vec![vec!["b"], vec!["d"]]);

    // Counts add up over pages and honour the filter.
    paged.count_only = true;
    let counts: Vec<u64> = store.query(paged).map(|p| p.unwrap().count).collect().await;
    assert_eq!(counts, [1, 1, 1]);
    let mut count = between;
    count.count_only = true;
    count.filter = vec![Cond::NotExists("completed_at".into())];
    let pages: Vec<_> = store.query(count).map(|p| p.unwrap()).collect().await;
    assert_eq!(pages.iter().map(|p| p.count).sum::<u64>(), 1);
    assert!(
        pages.iter().all(|p| p.items.is_empty()),
        "a count carries no items"
    );
    // An empty result is one empty page.
    assert_eq!(
        ids_of(&*store, queue("nobody").range("greenfield", None)).await,
        vec![Vec::<String>::new()]
    );
}

async fn batch_get_and_missing_tables(store: Arc<dyn TaskStore>) {
    let rows: Vec<Item> = (0..130)
        .map(|i| row(&format!("t{i:03}"), "w", 1000 * (i + 1)))
        .collect();
    store.batch_put(TASKS, rows).await.unwrap();
    let keys: Vec<(String, Item)> = (0..260)
        .map(|i| (TASKS.to_string(), key(&format!("t{i:03}"))))
        .collect();
    let found = store.batch_get(keys, "task_id").await.unwrap();
    assert_eq!(found.len(), 130, "only existing keys, over several requests");
    assert!(
        found.iter().all(|i| i.len() == 1 && i.contains_key("task_id")),
        "projected"
    );
    let err = store.get("no_such_table", key("a")).await.unwrap_err();
    assert_eq!(err.kind, FailureKind::ResourceNotFound, "{err}");
    let err = store
        .query(IndexQuery::new("no_such_table", None, "task_id", s("a")))
        .next()
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind, FailureKind::ResourceNotFound, "{err}");
}

fn memory() -> Arc<dyn TaskStore> {
    let cfg = TaskConfig::from_user(&serde_json::json!({})).unwrap();
    Arc::new(MemoryStore::for_config(&cfg))
}

async fn dynamo() -> (LocalAws, Arc<dyn TaskStore>) {
    let aws = LocalAws::start_serialised().await;
    aws.deploy_storage().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(aws.sdk_config()));
    (aws, Arc::new(store))
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::memory()).await;
            })*
        }
        mod dynamo_store {
            $(#[tokio::test]
            async fn $name() {
                let (_aws, store) = super::dynamo().await;
                super::$name(store).await;
            })*
        }
    };
}

contract!(
    conditional_claim_wins_once,
    conditional_appends_keep_order,
    transactions_are_all_or_nothing_with_reasons,
    the_greenfield_index_orders_limits_before_filters_and_pages,
    batch_get_and_missing_tables,
);
