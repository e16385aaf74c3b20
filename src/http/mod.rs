//! The HTTP surface: routes, request/response types, OpenAPI document, and error mapping.
//!
//! Handlers validate input, hand rows to the [`crate::service::ModelService`] and shape its
//! answers; they never touch the queue or the model directly.

pub(crate) mod error;
pub(crate) mod extract;
pub mod guard;
pub(crate) mod instances;
pub(crate) mod openapi;
pub(crate) mod page;
pub(crate) mod request_id;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod state;
pub mod types;
pub mod v2;

pub(crate) use error::ApiError;
pub use server::{RouterOptions, router};
pub(crate) use state::ApiState;
