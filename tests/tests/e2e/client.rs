//! `Client` retries: UNAVAILABLE is retried within the deadline for reads and for writes that
//! carry an idempotency key, and never for a write without one (it might have landed). The sidecar
//! runs in-process over an embedded table told to throttle, so each retry is deterministic.

use goalstore::table::{MemoryTable, Table};
use goalstore::{
    Client, ClientConfig, Error, GoalPattern, GoalService, GoalStore, NewGoal, StoreConfig, Target,
};
use goalstore_sidecar::server::{self, Listener, ServeOptions};
use std::sync::Arc;

struct InProcessSidecar {
    table: Arc<MemoryTable>,
    client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<Result<(), server::ServeError>>,
}

async fn start() -> anyhow::Result<InProcessSidecar> {
    let table = Arc::new(MemoryTable::default());
    let store = GoalStore::new(table.clone(), StoreConfig::default())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::run(
        Listener::Tcp(listener),
        store,
        ServeOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let client = Client::new(ClientConfig {
        endpoint: format!("http://{address}"),
        ..ClientConfig::default()
    })?;
    Ok(InProcessSidecar {
        table,
        client,
        stop: Some(stop),
        served,
    })
}

fn goal(id: Option<&str>) -> NewGoal {
    NewGoal {
        goal_id: id.map(str::to_owned),
        ..NewGoal::new(
            "retry me",
            GoalPattern::Milestone,
            Target {
                metric: "count".into(),
                value: Some(5.0),
                target_date: goalstore::Timestamp::parse(goalstore_tests::goals::FAR_AHEAD),
                ..Target::default()
            },
        )
    }
}

#[tokio::test]
async fn unavailable_is_retried_only_where_it_is_safe() -> anyhow::Result<()> {
    let mut sidecar = start().await?;
    let client = &sidecar.client;

    // A keyed write: the first attempt is throttled, the retry lands, once.
    sidecar.table.throttle_next(1);
    let created = client.create_goal("u1", goal(Some("g1"))).await?;
    assert_eq!(created.goal_id, "g1");
    assert_eq!(
        sidecar.table.usage().throttled,
        1,
        "the first attempt was refused"
    );

    // A write without a key is not retried: the caller hears UNAVAILABLE. (The create's rules
    // read u1's active list from the cache: the refused request is its put.)
    sidecar.table.throttle_next(1);
    let refused = client
        .create_goal(
            "u1",
            NewGoal {
                title: "retry me not".into(),
                ..goal(None)
            },
        )
        .await;
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    assert_eq!(client.list_active_goals("u1").await?.len(), 1);

    // A read is retried (another user: u1's list is cached).
    sidecar.table.throttle_next(2);
    let active = client.list_active_goals("u3").await?;
    assert!(active.is_empty());
    assert_eq!(sidecar.table.usage().throttled, 4);

    // More refusals than attempts: the read gives up with UNAVAILABLE, within its deadline.
    sidecar.table.throttle_next(100);
    let started = std::time::Instant::now();
    let refused = client.list_active_goals("u2").await;
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    assert!(started.elapsed() < ClientConfig::default().timeout);

    if let Some(stop) = sidecar.stop.take() {
        let _ = stop.send(());
    }
    (&mut sidecar.served).await??;
    Ok(())
}
