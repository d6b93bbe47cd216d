//! Token shards.
