//! Processes: commands run to completion, and servers killed on drop.

mod exit;
mod field;
mod listening;
mod logged_server;
mod run;
mod signal;
mod watched;

pub use exit::{wait_until, KilledOnDrop};
pub use field::field;
pub use listening::{listening_port, SERVER_START_TIMEOUT};
pub use logged_server::{LoggedServer, SERVER_EXIT_TIMEOUT};
pub use run::{read_on_thread, run, run_ok, run_with_input, Finished};
pub use signal::signal;
pub use watched::{WatchedProcess, PROGRAM_EXIT_TIMEOUT};
