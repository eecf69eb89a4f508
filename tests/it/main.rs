//! The black-box tests of wasmon: each module starts the real binary
//! (`CARGO_BIN_EXE_wasmon`) against real plugins and servers. They are one
//! test binary, so wasmtime and the harness are linked once and a slow server
//! (RabbitMQ, Prometheus) can be shared by every module that needs one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod amqp;
mod amqp_plugins;
mod authoring;
mod client_sdk;
mod collectors;
mod dashboard;
mod data_sources;
mod delivery;
mod deploy;
mod durability;
mod gpu;
mod hardening_http;
mod hardening_plugins;
mod hardening_store;
mod health;
mod hostile;
mod hot_reload;
mod ingest;
mod ingest_errors;
mod openapi;
mod operations;
mod outage;
mod pipeline;
mod plugin_cli;
mod shadow;
mod sink_alertmanager;
mod sink_amqp;
mod sink_cloudwatch;
mod sink_elasticsearch;
mod sink_file;
mod sink_redis_stream;
mod sink_zabbix;
mod sinks;
mod sql;
mod storage;
mod supervisor;
mod teaching;
mod tutorial;
mod upload;
mod websocket;
