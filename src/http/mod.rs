//! The HTTP surface: routes, request/response types, OpenAPI document, and error mapping.
//!
//! Handlers validate input, hand rows to the [`crate::service::ModelService`] and shape its
//! answers; they never touch the queue or the model directly.

pub mod error;
pub mod extract;
pub mod guard;
pub mod instances;
pub mod openapi;
pub mod page;
pub mod request_id;
pub mod routes;
pub mod server;
pub mod state;
pub mod types;
pub mod v2;

pub use error::ApiError;
pub use server::{RouterOptions, router};
pub use state::ApiState;
