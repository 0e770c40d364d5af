
pub mod gpu;
