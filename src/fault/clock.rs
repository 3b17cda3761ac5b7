//! Clock skew and drift on a server (issue 4, item 3).
//!
//! SCAFFOLD: to be written.
