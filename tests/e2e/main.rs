//! occopus's end-to-end tests, in one test binary: the `occopus` binary and
//! the library against real back-ends (local cloud nodes, moto for EC2, a
//! dockerd of the test's own, MariaDB, real HTTP servers). The tests start
//! and stop what they need; some need root (network namespaces, bridges).
//! `common` holds what they share; each other module is one area.

mod azure;
mod build;
mod chef;
mod cli;
mod cloudbroker;
mod cloudsigma;
mod common;
mod conformance;
mod crash;
mod dashboard;
mod docker;
mod ec2;
mod first_party;
mod health;
mod hostile;
mod leases;
mod loading;
mod local_cloud;
mod local_driver;
mod maintain;
mod messages;
mod openstack;
mod postgres_state;
mod puppet;
mod readme;
mod registry;
mod replay;
mod replicas;
mod rest;
mod sandbox;
mod sdk_example;
mod state_file;
mod validation;
