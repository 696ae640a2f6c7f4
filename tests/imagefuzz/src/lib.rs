//! A structure-aware image fuzzer for arborfs: it makes small file systems
//! through the engine, mutates one structure at a time with checksums
//! recomputed (plus raw flips, zeroed regions and truncation), and runs the
//! real `arborfs` tool on each case (show-super, fsck -n, dump, restore into
//! a sandbox, fsck -y, fsck -n, fsck -y, restore), classifying panics,
//! hangs, memory blow-ups, escapes from the restore sandbox, read-only
//! commands that change the image, repairs that do not converge, repairs
//! that break an image that opened, and data a repair lost.
// A test tool: it indexes its own buffers, and a panic here is a bug in the
// fuzzer, never in the product.
#![allow(clippy::indexing_slicing)]

pub mod base;
pub mod image;
pub mod mutate;
pub mod run;
