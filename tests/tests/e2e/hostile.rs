//! Hostile input, as property tests (proptest; cargo-fuzz needs a nightly toolchain this machine
//! does not have, so these stand in for fuzz targets — see docs/reliability.md):
//!
//! - items from the table with attributes missing, added or of the wrong type never panic the
//!   decoders (they answer a typed error or a value); the same for bytes in the cache;
//! - no id, however hostile, builds a table key outside the caller's partition or a cache key
//!   outside the namespace: an id either is refused or appears verbatim in exactly its slot;
//! - arbitrary bytes sent as any RPC's request get a gRPC status, and the sidecar keeps serving.

use crate::sidecar_ops::RPCS;
use anyhow::Context;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::{Buf, BufMut};
use goalstore::cache::codec;
use goalstore::cache::keys::KeySpace;
use goalstore::item::{activity_from_item, goal_from_item};
use goalstore::keys::{activity_sk_prefix, goal_key, user_partition, GoalId, UserId};
use goalstore::table::Item;
use goalstore_proto::v1 as pb;
use goalstore_tests::dynamo::origin_items;
use goalstore_tests::ops::start_sidecar;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use prost::Message;
use std::collections::HashMap;
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Code;

/// Any DynamoDB attribute value, nested a few levels.
fn attribute() -> impl Strategy<Value = AttributeValue> {
    let leaf = prop_oneof![
        any::<String>().prop_map(AttributeValue::S),
        prop_oneof![
            any::<f64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[0-9eE.+-]{0,12}".prop_map(|s| s),
            any::<String>(),
        ]
        .prop_map(AttributeValue::N),
        any::<bool>().prop_map(AttributeValue::Bool),
        Just(AttributeValue::Null(true)),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(|b| AttributeValue::B(Blob::new(b))),
        proptest::collection::vec(any::<String>(), 0..3).prop_map(AttributeValue::Ss),
        proptest::collection::vec("[0-9]{1,4}", 0..3).prop_map(AttributeValue::Ns),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
            proptest::collection::hash_map(
                prop_oneof!["[a-z_]{1,16}".prop_map(|s| s), any::<String>()],
                inner,
                0..4
            )
            .prop_map(AttributeValue::M),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Remove the attribute at this index (of the sorted names).
    Remove(usize),
    /// Give the attribute at this index another value, likely of another type.
    Retype(usize, AttributeValue),
    /// Add an attribute (or replace one of this name).
    Add(String, AttributeValue),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), attribute()).prop_map(|(i, v)| Mutation::Retype(i, v)),
        (
            prop_oneof![
                // Names the decoders know, and any other.
                prop::sample::select(vec![
                    "pk",
                    "sk",
                    "goal_id",
                    "user_id",
                    "title",
                    "status",
                    "target",
                    "progress",
                    "created_at",
                    "logged_at",
                    "value",
                    "EntityType",
                    "TTL",
                ])
                .prop_map(str::to_owned),
                any::<String>(),
            ],
            attribute()
        )
            .prop_map(|(n, v)| Mutation::Add(n, v)),
    ]
}

fn mutate(mut item: Item, mutations: &[Mutation]) -> Item {
    for mutation in mutations {
        let mut names: Vec<String> = item.keys().cloned().collect();
        names.sort();
        match mutation {
            Mutation::Remove(i) if !names.is_empty() => {
                item.remove(&names[i % names.len()]);
            }
            Mutation::Retype(i, value) if !names.is_empty() => {
                item.insert(names[i % names.len()].clone(), value.clone());
            }
            Mutation::Add(name, value) => {
                item.insert(name.clone(), value.clone());
            }
            _ => {}
        }
    }
    item
}

fn fixture() -> Vec<Item> {
    origin_items().expect("the origin fixture loads")
}

proptest! {
    #![proptest_config(Config { cases: 256, ..Config::default() })]

    /// Every fixture item (goals of every pattern, activities), mutated: the decoders answer,
    /// never panic. An intact item still decodes (the mutations are what breaks it).
    #[test]
    fn mutated_items_never_panic_the_decoders(
        index in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 0..6),
    ) {
        let items = fixture();
        let item = mutate(items[index % items.len()].clone(), &mutations);
        let goal = goal_from_item(&item);
        let activity = activity_from_item(&item);
        if mutations.is_empty() {
            prop_assert!(goal.is_ok() || activity.is_ok(), "an intact fixture item decodes");
        }
        if let Ok(goal) = goal {
            // What decodes re-encodes, so a later write cannot fail on it either.
            let _ = goalstore::item::goal_to_item(&goal);
        }
    }

    /// Completely arbitrary items.
    #[test]
    fn arbitrary_items_never_panic_the_decoders(
        item in proptest::collection::hash_map(any::<String>(), attribute(), 0..12),
    ) {
        let item: HashMap<String, AttributeValue> = item;
        let _ = goal_from_item(&item);
        let _ = activity_from_item(&item);
    }

    /// Bytes in the cache (another version, another kind, corruption) are errors, not panics.
    #[test]
    fn arbitrary_cache_bytes_never_panic_the_codec(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        flip in any::<(usize, u8)>(),
    ) {
        let _ = codec::decode_goal(&bytes);
        let _ = codec::decode_goals(&bytes);
        let _ = codec::decode_progress(&bytes);
        // A real value with one byte changed, or cut short.
        let goal = goal_from_item(&fixture()[0]).expect("a goal");
        let mut encoded = codec::encode_goal(Some(&goal)).to_vec();
        let at = flip.0 % encoded.len();
        encoded[at] ^= flip.1;
        let _ = codec::decode_goal(&encoded);
        let _ = codec::decode_goal(&encoded[..at]);
    }

    /// An id is refused, or its keys hold it verbatim in its own slot: `USER#{user}` as the
    /// partition, `GOAL#{goal}` as the sort key, one `#` each, and cache keys under the namespace
    /// that parse back as themselves. So no id reaches another user's partition or cache entries.
    #[test]
    fn no_id_builds_a_key_outside_its_partition_or_namespace(
        user in prop_oneof!["[A-Za-z0-9_-]{1,128}".prop_map(|s| s), any::<String>(), "[A-Za-z0-9#:{}_-]{0,12}".prop_map(|s| s)],
        goal in prop_oneof!["[A-Za-z0-9_-]{1,128}".prop_map(|s| s), any::<String>(), "[A-Za-z0-9#:{}_-]{0,12}".prop_map(|s| s)],
        other in "[A-Za-z0-9_-]{1,16}",
    ) {
        let (Ok(user_id), Ok(goal_id)) = (UserId::parse(&user), GoalId::parse(&goal)) else {
            // Refused: then it must hold something outside the charset, or the wrong length.
            let fine = |s: &str| (1..=128).contains(&s.len())
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            prop_assert!(!fine(&user) || !fine(&goal), "refused a valid id: {user:?} {goal:?}");
            return Ok(());
        };
        let key = goal_key(&user_id, &goal_id);
        prop_assert_eq!(&key.pk, &format!("USER#{user}"));
        prop_assert_eq!(&key.sk, &format!("GOAL#{goal}"));
        prop_assert_eq!(key.pk.matches('#').count(), 1);
        prop_assert_eq!(key.sk.matches('#').count(), 1);
        prop_assert_eq!(user_partition(&user_id), key.pk.clone());
        prop_assert_eq!(activity_sk_prefix(&goal_id), format!("ACTIVITY#{goal}#"));
        // Another user's partition is another key.
        let other_user = UserId::parse(&other).expect("valid");
        prop_assert_eq!(user_partition(&other_user) == key.pk, other == user);

        let space = KeySpace::new("gs").expect("a namespace");
        for cache_key in [
            space.goal(&user_id, &goal_id),
            space.active_goals(&user_id),
            space.progress(&goal_id),
        ] {
            prop_assert!(cache_key.text.starts_with("gs:v1:{"), "{}", cache_key.text);
            prop_assert!(cache_key.text.ends_with('}'), "{}", cache_key.text);
            prop_assert_eq!(cache_key.text.matches('{').count(), 1, "one hash tag");
            prop_assert_eq!(space.parse(&cache_key.text), Some(cache_key.clone()));
        }
        prop_assert_eq!(
            &*space.goal(&user_id, &goal_id).text,
            format!("gs:v1:{{goal:user:{user}:{goal}}}")
        );
        prop_assert!(space.goal(&other_user, &goal_id) != space.goal(&user_id, &goal_id) || other == user);
    }
}

/// Sends and receives raw bytes, so a test can put anything on the wire as a request.
#[derive(Debug, Clone, Default)]
struct RawCodec;

#[derive(Debug)]
struct RawEncoder;

#[derive(Debug)]
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// A request body: random bytes, or a well-formed message of another method with hostile
/// strings (protobuf decodes fields it does not expect as unknown), possibly cut short.
fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        (any::<String>(), any::<String>(), any::<f64>(), any::<u16>()).prop_map(
            |(user_id, goal_id, value, cut)| {
                let bytes = pb::LogActivityRequest {
                    user_id,
                    goal_id,
                    value,
                    ..Default::default()
                }
                .encode_to_vec();
                let keep = bytes.len() - usize::from(cut) % (bytes.len() + 1) / 2;
                bytes[..keep].to_vec()
            }
        ),
        (
            any::<String>(),
            proptest::collection::vec(any::<String>(), 0..5)
        )
            .prop_map(
                |(user_id, goal_ids)| pb::BatchGetGoalsRequest { user_id, goal_ids }
                    .encode_to_vec()
            ),
    ]
}

#[tokio::test]
async fn arbitrary_bytes_as_any_rpc_request_get_a_status_never_a_crash() -> anyhow::Result<()> {
    let sidecar = start_sidecar(&[], true).await?;
    let channel = tonic::transport::Channel::from_shared(sidecar.endpoint())?
        .connect()
        .await?;
    let mut runner = TestRunner::new(Config {
        cases: 40,
        ..Config::default()
    });
    let strategy = request_bytes();
    let mut codes: HashMap<Code, usize> = HashMap::new();
    for method in RPCS {
        let path: http::uri::PathAndQuery = format!("/goalstore.v1.GoalStore/{method}").parse()?;
        for case in 0..40 {
            let bytes = strategy
                .new_tree(&mut runner)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .current();
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await?;
            let mut request = tonic::Request::new(bytes.clone());
            request.set_timeout(Duration::from_secs(5));
            let answer = grpc.unary(request, path.clone(), RawCodec).await;
            let code = match answer {
                Ok(_) => Code::Ok,
                Err(status) => {
                    // Unknown or Unavailable would be a broken connection or a crash, and a
                    // deadline a hang; anything the service chose is fine.
                    anyhow::ensure!(
                        !matches!(
                            status.code(),
                            Code::Unknown
                                | Code::Unavailable
                                | Code::DeadlineExceeded
                                | Code::Cancelled
                        ),
                        "{method} case {case} ({bytes:?}): {status:?}"
                    );
                    status.code()
                }
            };
            *codes.entry(code).or_default() += 1;
        }
    }
    // Still serving, and a real call works.
    let mut client = sidecar.client().await?;
    client
        .stats(pb::StatsRequest {})
        .await
        .context("the sidecar still serves")?;
    let logs = sidecar.logs()?;
    anyhow::ensure!(!logs.contains("panicked"), "a panic in the logs:\n{logs}");
    eprintln!(
        "hostile: {} requests of arbitrary bytes over {} RPCs: {codes:?}",
        RPCS.len() * 40,
        RPCS.len()
    );
    Ok(())
}
