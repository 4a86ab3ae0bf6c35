#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The integration suite: one test binary, real peers (sipp, WebSocket clients) against
//! gateways started in-process on free loopback ports.

mod admin_api;
mod answered;
mod browser;
mod conference;
mod harness;
mod malformed;
mod openapi;
mod outbound;
mod raw_sip;
mod recording;
mod recording_s3;
mod sip_trunk;
mod sipp_media;
mod transcription_worker;
mod webhooks;
mod webrtc_manager;
