//! Where the daemon's log lines go and how they are framed.
//!
//! Under systemd stderr is a stream to journald, which stores each line as one entry with its
//! own timestamp and a priority. journald reads the priority from an sd-daemon `<N>` prefix
//! (syslog priority N; `SyslogLevelPrefix=` defaults to yes), so on the journal every line is
//! written as `<N>LEVEL target: message fields`, with no timestamp of ours and with line
//! breaks inside the event escaped, so one event stays one entry at its priority. Anywhere else
//! (a terminal, a file, a pipe) the lines keep tracing-subscriber's full format.
//!
//! The prefix is used rather than journald's native socket protocol: it needs nothing but the
//! stream systemd already connected, works under the unit's sandbox as is, and no extra crate.

use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Environment variable naming the filter (`RUST_LOG` syntax); `info` when unset or invalid.
pub const FILTER_VARIABLE: &str = "OVN_IPSECD_LOG";

/// Set by systemd to `DEVICE:INODE` of the stream it connected stdout/stderr to (systemd.exec(5)).
const JOURNAL_STREAM_VARIABLE: &str = "JOURNAL_STREAM";

/// Syslog priority journald stores for an event of `level` (RFC 5424 severities: err=3,
/// warning=4, info=6, debug=7); TRACE has no severity of its own and shares debug's.
pub fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Parses the `JOURNAL_STREAM` value `DEVICE:INODE` (two decimal numbers).
pub fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (device, inode) = value.split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
}

/// Whether stderr, whose device and inode are `stderr_id`, is the stream `journal_stream`
/// names. A process whose stderr was redirected (a child of a unit, `2>file`) inherits the
/// variable but not the stream, so the variable alone is not enough (sd-daemon's rule).
pub fn is_journal_stream(journal_stream: Option<&OsStr>, stderr_id: Option<(u64, u64)>) -> bool {
    match (journal_stream.and_then(OsStr::to_str), stderr_id) {
        (Some(value), Some(id)) => parse_journal_stream(value) == Some(id),
        _ => false,
    }
}

/// Device and inode of this process's stderr, `None` when it is closed or cannot be examined.
fn stderr_id() -> Option<(u64, u64)> {
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Whether this process's stderr is connected to the journal.
pub fn stderr_is_journal() -> bool {
    is_journal_stream(
        std::env::var_os(JOURNAL_STREAM_VARIABLE).as_deref(),
        stderr_id(),
    )
}

/// One journal line from an already formatted event: the `<N>` prefix for `level`, the text
/// without its leading padding and trailing line break, and every line break, carriage return
/// or NUL inside it escaped (`\n`, `\r`, `\0`; each would end the entry there), then `\n`.
// Limitation: journald still splits a line longer than its LineMax= (48K by default).
pub fn journal_line(level: &Level, formatted: &str) -> String {
    let text = formatted
        .trim_start_matches(' ')
        .trim_end_matches(['\n', '\r']);
    let mut line = String::with_capacity(text.len() + 5);
    // Writing to a String cannot fail.
    let _ = write!(line, "<{}>", syslog_priority(level));
    for ch in text.chars() {
        match ch {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\0' => line.push_str("\\0"),
            _ => line.push(ch),
        }
    }
    line.push('\n');
    line
}

/// Event format for the journal: tracing-subscriber's full format without timestamp and
/// colour, framed by [`journal_line`].
struct JournalFormat {
    inner: Format<Full, ()>,
}

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut formatted = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut formatted), event)?;
        writer.write_str(&journal_line(event.metadata().level(), &formatted))
    }
}

/// The subscriber for a journal stream behind `writer`: no timestamp, no colour, `<N>` lines.
fn journal_subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let inner = Format::default().without_time().with_ansi(false);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .event_format(JournalFormat { inner })
        .finish()
}

/// Installs the global subscriber: filter from [`FILTER_VARIABLE`], journal framing when stderr
/// is the journal, the full format otherwise.
pub fn init() {
    let filter = match EnvFilter::try_from_env(FILTER_VARIABLE) {
        Ok(filter) => filter,
        Err(error) => {
            if std::env::var_os(FILTER_VARIABLE).is_some() {
                stderr_line(
                    &Level::WARN,
                    format_args!("ignoring {FILTER_VARIABLE}: {error}; logging at info"),
                );
            }
            EnvFilter::new("info")
        }
    };
    if stderr_is_journal() {
        // Fails only if a subscriber was installed before, which main does not do.
        let _ =
            tracing::subscriber::set_global_default(journal_subscriber(filter, std::io::stderr));
    } else {
        // Colours only for a person at a terminal: a log file or a pipe gets plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
            && std::env::var_os("NO_COLOR").is_none();
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .init();
    }
}

/// A line the daemon writes itself before (or after) the subscriber runs: `ovn-ipsecd: text`
/// as always, with the `<N>` prefix for `level` when stderr is the journal.
pub fn stderr_line(level: &Level, text: fmt::Arguments<'_>) {
    let line = format!("ovn-ipsecd: {text}");
    let framed = if stderr_is_journal() {
        journal_line(level, &line)
    } else {
        line + "\n"
    };
    // Nothing is left to report a failing stderr to.
    let _ = std::io::stderr().write_all(framed.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_sd_daemon_syslog_priorities() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::DEBUG), 7);
        assert_eq!(syslog_priority(&Level::TRACE), 7);
    }

    #[test]
    fn journal_line_prefixes_priority_and_drops_padding() {
        assert_eq!(
            journal_line(
                &Level::WARN,
                " WARN controller::daemon: Southbound unreachable\n"
            ),
            "<4>WARN controller::daemon: Southbound unreachable\n"
        );
        assert_eq!(
            journal_line(&Level::ERROR, "ERROR x: failed"),
            "<3>ERROR x: failed\n"
        );
        assert_eq!(
            journal_line(&Level::INFO, " INFO x: up\n"),
            "<6>INFO x: up\n"
        );
        assert_eq!(
            journal_line(&Level::TRACE, "TRACE x: y\n"),
            "<7>TRACE x: y\n"
        );
    }

    #[test]
    fn journal_line_keeps_a_multi_line_event_on_one_line() {
        let line = journal_line(&Level::ERROR, "ERROR x: first\nsecond\r\nthird\0end\n");
        assert_eq!(line, "<3>ERROR x: first\\nsecond\\r\\nthird\\0end\n");
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn journal_line_of_an_empty_event_is_just_the_prefix() {
        assert_eq!(journal_line(&Level::INFO, "\n"), "<6>\n");
    }

    #[test]
    fn journal_stream_value_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("8:123456"), Some((8, 123456)));
        assert_eq!(parse_journal_stream("8:"), None);
        assert_eq!(parse_journal_stream(":5"), None);
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("8:5:1"), None);
        assert_eq!(parse_journal_stream("-1:5"), None);
        assert_eq!(parse_journal_stream("x:5"), None);
        assert_eq!(parse_journal_stream("99999999999999999999999:5"), None);
    }

    #[test]
    fn journal_is_detected_only_when_the_variable_names_stderr() {
        let var = Some(OsStr::new("8:123"));
        assert!(is_journal_stream(var, Some((8, 123))));
        // Inherited variable, redirected stderr: a different file.
        assert!(!is_journal_stream(var, Some((8, 124))));
        assert!(!is_journal_stream(var, Some((9, 123))));
        assert!(!is_journal_stream(var, None));
        assert!(!is_journal_stream(None, Some((8, 123))));
        assert!(!is_journal_stream(
            Some(OsStr::new("garbage")),
            Some((8, 123))
        ));
    }

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn journal_subscriber_writes_one_prefixed_line_per_event_without_timestamp() {
        let captured = Captured::default();
        let subscriber = journal_subscriber(EnvFilter::new("debug"), captured.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("peer", chassis = "chassis-2");
            let _entered = span.enter();
            tracing::warn!(remote = "tcp:127.0.0.1:6642", "Southbound unreachable");
            // A Display field keeps its line break; the framing escapes it.
            tracing::error!(error = %"line one\nline two", "reconcile failed");
            tracing::info!("adopting installed states");
            tracing::debug!("detail");
            tracing::trace!("filtered out");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "<4>WARN peer{chassis=\"chassis-2\"}: controller::logging::tests: Southbound unreachable remote=\"tcp:127.0.0.1:6642\"",
                "<3>ERROR peer{chassis=\"chassis-2\"}: controller::logging::tests: reconcile failed error=line one\\nline two",
                "<6>INFO peer{chassis=\"chassis-2\"}: controller::logging::tests: adopting installed states",
                "<7>DEBUG peer{chassis=\"chassis-2\"}: controller::logging::tests: detail",
            ]
        );
        assert!(!text.contains('\x1b'), "no colour codes: {text:?}");
    }

    #[test]
    fn stderr_of_the_test_process_is_examined() {
        // Whatever the test harness connected, fstat of fd 2 answers.
        assert!(stderr_id().is_some());
    }
}
