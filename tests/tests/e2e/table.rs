//! `DynamoTable` against the real server and `MemoryTable` behave the same for every operation
//! goalstore uses: each check runs against both.

use aws_sdk_dynamodb::types::AttributeValue;
use goalstore::keys::ItemKey;
use goalstore::table::{
    Condition, DynamoTable, Item, MemoryTable, Query, SortKeyRange, Table, TableError, Update,
    Write,
};
use goalstore_tests::dynamo;
use goalstore_tests::servers::MotoServer;
use std::collections::HashMap;
use std::sync::Arc;

fn item(pk: &str, sk: &str, version: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.into())),
        ("sk".to_owned(), AttributeValue::S(sk.into())),
        ("version".to_owned(), AttributeValue::S(version.into())),
    ])
}

fn key(pk: &str, sk: &str) -> ItemKey {
    ItemKey {
        pk: pk.into(),
        sk: sk.into(),
    }
}

async fn both() -> anyhow::Result<Vec<Arc<dyn Table>>> {
    let name = dynamo::fresh_table("table").await?;
    let dynamo_table = DynamoTable::new(dynamo::client(MotoServer::shared().endpoint()), name);
    Ok(vec![
        Arc::new(dynamo_table),
        Arc::new(MemoryTable::default()),
    ])
}

#[tokio::test]
async fn conditional_writes_agree() -> anyhow::Result<()> {
    for table in both().await? {
        table
            .put_item(item("p", "a", "1"), Some(Condition::ItemAbsent))
            .await?;
        assert_eq!(
            table
                .put_item(item("p", "a", "2"), Some(Condition::ItemAbsent))
                .await,
            Err(TableError::ConditionFailed),
            "{table:?}"
        );
        let only_over = |version: &str| Condition::AttributeEquals {
            attribute: "version".into(),
            value: AttributeValue::S(version.into()),
        };
        assert_eq!(
            table
                .put_item(item("p", "a", "3"), Some(only_over("2")))
                .await,
            Err(TableError::ConditionFailed)
        );
        table
            .put_item(item("p", "a", "2"), Some(only_over("1")))
            .await?;
        assert_eq!(
            table.get_item(&key("p", "a")).await?,
            Some(item("p", "a", "2"))
        );
        // An item that does not exist fails an equality condition.
        assert_eq!(
            table
                .put_item(item("p", "z", "1"), Some(only_over("1")))
                .await,
            Err(TableError::ConditionFailed)
        );
        assert_eq!(table.get_item(&key("p", "z")).await?, None);
    }
    Ok(())
}

#[tokio::test]
async fn queries_and_pages_agree() -> anyhow::Result<()> {
    for table in both().await? {
        for sk in ["A#1", "A#2", "A#3", "A#4", "A#5", "B#1"] {
            table.put_item(item("q", sk, "1"), None).await?;
        }
        table.put_item(item("other", "A#9", "1"), None).await?;
        for descending in [false, true] {
            let mut query = Query {
                pk: "q".into(),
                sort_keys: SortKeyRange::BeginsWith("A#".into()),
                descending,
                limit: Some(2),
                start_after: None,
            };
            let mut seen = Vec::new();
            loop {
                let page = table.query(&query).await?;
                assert!(page.items.len() <= 2);
                seen.extend(
                    page.items
                        .iter()
                        .map(|i| goalstore::table::item_key(i).expect("keyed").sk),
                );
                match page.last_sort_key {
                    Some(last) => query.start_after = Some(last),
                    None => break,
                }
            }
            let mut expected = vec!["A#1", "A#2", "A#3", "A#4", "A#5"];
            if descending {
                expected.reverse();
            }
            assert_eq!(seen, expected, "{table:?} descending={descending}");
        }
        let between = table
            .query(&Query {
                pk: "q".into(),
                sort_keys: SortKeyRange::Between {
                    low: "A#2".into(),
                    high: "A#4".into(),
                },
                descending: true,
                limit: None,
                start_after: None,
            })
            .await?;
        assert_eq!(between.items.len(), 3);
        assert_eq!(between.last_sort_key, None);
    }
    Ok(())
}

#[tokio::test]
async fn batch_gets_agree() -> anyhow::Result<()> {
    for table in both().await? {
        for i in 0..60 {
            table
                .put_item(item("b", &format!("K#{i:03}"), "1"), None)
                .await?;
        }
        let keys: Vec<ItemKey> = (0..100).map(|i| key("b", &format!("K#{i:03}"))).collect();
        let output = table.batch_get_items(&keys).await?;
        assert_eq!(
            output.items.len(),
            60,
            "{table:?}: the 40 missing keys are simply absent"
        );
        assert!(output.unprocessed.is_empty());
        let too_many: Vec<ItemKey> = (0..101).map(|i| key("b", &format!("K#{i:03}"))).collect();
        assert!(matches!(
            table.batch_get_items(&too_many).await,
            Err(TableError::Rejected(_))
        ));
        let usage = table.usage();
        assert_eq!(
            usage.batch_get_item, 1,
            "{table:?}: a refused batch is never sent"
        );
        assert!(
            usage.read_units > 0.0,
            "{table:?}: consumed capacity is recorded"
        );
    }
    Ok(())
}

#[tokio::test]
async fn transactions_agree() -> anyhow::Result<()> {
    let put = |sk: &str, version: &str, condition| Write::Put {
        item: item("t", sk, version),
        condition,
    };
    for table in both().await? {
        table
            .transact_write(vec![
                put("a", "1", Some(Condition::ItemAbsent)),
                put("b", "1", Some(Condition::ItemAbsent)),
            ])
            .await?;
        // One condition fails: nothing of the transaction lands.
        let refused = table
            .transact_write(vec![
                put("c", "1", Some(Condition::ItemAbsent)),
                put("a", "2", Some(Condition::ItemAbsent)),
            ])
            .await;
        assert_eq!(refused, Err(TableError::ConditionFailed), "{table:?}");
        assert_eq!(
            table.get_item(&key("t", "c")).await?,
            None,
            "{table:?}: all or nothing"
        );
        assert_eq!(
            table.get_item(&key("t", "a")).await?,
            Some(item("t", "a", "1"))
        );
        // A SET keeps the attributes it does not name, and its condition guards the whole.
        let mut a = item("t", "a", "1");
        a.insert("kept".into(), AttributeValue::Bool(true));
        table.put_item(a, None).await?;
        let set = |version: &str, expected: &str| {
            Write::Update(Update {
                key: key("t", "a"),
                set: HashMap::from([
                    ("version".to_owned(), AttributeValue::S(version.into())),
                    ("extra".to_owned(), AttributeValue::Null(true)),
                ]),
                remove: Vec::new(),
                condition: Some(Condition::AttributeEquals {
                    attribute: "version".into(),
                    value: AttributeValue::S(expected.into()),
                }),
            })
        };
        let stale = table
            .transact_write(vec![set("3", "2"), put("d", "1", None)])
            .await;
        assert_eq!(stale, Err(TableError::ConditionFailed), "{table:?}");
        assert_eq!(table.get_item(&key("t", "d")).await?, None, "{table:?}");
        table
            .transact_write(vec![set("3", "1"), put("d", "1", None)])
            .await?;
        let mut expected = item("t", "a", "3");
        expected.insert("kept".into(), AttributeValue::Bool(true));
        expected.insert("extra".into(), AttributeValue::Null(true));
        assert_eq!(
            table.get_item(&key("t", "a")).await?,
            Some(expected),
            "{table:?}"
        );
        assert_eq!(table.usage().transact_write_items, 4);
    }
    Ok(())
}

#[tokio::test]
async fn updates_agree() -> anyhow::Result<()> {
    for table in both().await? {
        let mut a = item("u", "a", "1");
        a.insert("kept".into(), AttributeValue::N("7".into()));
        a.insert("gone".into(), AttributeValue::N("1".into()));
        table.put_item(a, None).await?;
        let version = |v: &str| Condition::AttributeEquals {
            attribute: "version".into(),
            value: AttributeValue::S(v.into()),
        };
        let update = |sk: &str, v: &str, expected: &str| Update {
            key: key("u", sk),
            set: HashMap::from([("version".to_owned(), AttributeValue::S(v.into()))]),
            remove: vec!["gone".to_owned()],
            condition: Some(version(expected)),
        };
        assert_eq!(
            table.update_item(update("a", "2", "0")).await,
            Err(TableError::ConditionFailed),
            "{table:?}"
        );
        // A condition on an attribute needs the item: nothing is created.
        assert_eq!(
            table.update_item(update("missing", "2", "1")).await,
            Err(TableError::ConditionFailed),
            "{table:?}"
        );
        assert_eq!(table.get_item(&key("u", "missing")).await?, None);
        table.update_item(update("a", "2", "1")).await?;
        let mut expected = item("u", "a", "2");
        expected.insert("kept".into(), AttributeValue::N("7".into()));
        assert_eq!(
            table.get_item(&key("u", "a")).await?,
            Some(expected),
            "{table:?}"
        );
        assert_eq!(table.usage().update_item, 3, "{table:?}");
    }
    Ok(())
}
