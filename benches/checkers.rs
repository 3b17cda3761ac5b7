//! SCAFFOLD: to be written (see the issue). A no-op main keeps cargo happy.
fn main() {}
