//! DynamoDB for tests: a client that never consults real AWS, uniquely named tables with
//! the store's key schema, and the origin fixture items.

mod connect;
mod fixtures;
mod json;
mod tables;

pub use connect::client;
pub use fixtures::{origin_items, origin_user_id, origin_written};
pub use json::{parse_attribute_value, parse_item};
pub use tables::{create_table, fresh_table, put_items, scan, unique_table_name};
