//! Real servers the tests talk to, each a child process on free loopback ports
//! with a temporary data directory, stopped with everything it started when its
//! guard drops. They panic when the server cannot start: a missing server is a
//! broken setup (`scripts/test.sh` installs them), never a reason to skip.

pub mod alertmanager;
pub mod postgres;
pub mod prometheus;
pub mod rabbitmq;
pub mod redis;
pub mod s3;
