//! gort-arch placeholder
