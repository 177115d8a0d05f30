//! Size limits the planner enforces, so that a hostile Dockerfile cannot exhaust memory while it is
//! planned, and so that a RUN the kernel would refuse fails at planning with a message that names
//! the variable and the line that set it (instead of "argument list too long" at every RUN).
//!
//! - One expanded word: [`MAX_WORD_BYTES`] (1 MiB), enforced by the expander as the word grows.
//! - All expansions of one Dockerfile together, plus the argument and environment strings of its
//!   RUN steps: [`MAX_EXPANDED_TOTAL`] (64 MiB).
//! - One argument or environment string of a RUN: the kernel's `MAX_ARG_STRLEN` (128 KiB, `NAME=`
//!   and the terminating NUL included).
//! - All arguments and environment strings of a RUN: [`MAX_ARG_TOTAL`] (2 MiB, the kernel's limit
//!   with the usual 8 MiB stack).

use std::cell::Cell;

use kiln_dockerfile_parser::Span;
#[cfg(test)]
pub(super) use kiln_dockerfile_parser::shell::MAX_WORD_BYTES;

use super::PlanError;

/// The most bytes all expansions of one Dockerfile, and the argument and environment strings of
/// all its RUN steps, may add up to.
pub const MAX_EXPANDED_TOTAL: usize = 64 * 1024 * 1024;

/// The kernel's limit on one argument or environment string given to `execve`, in bytes with the
/// terminating NUL (`MAX_ARG_STRLEN`, 32 pages).
pub const MAX_ARG_STRLEN: usize = 131_072;

/// The limit on all argument and environment strings of one `execve` with their pointers: a
/// quarter of the stack limit, 2 MiB with the usual 8 MiB stack.
pub const MAX_ARG_TOTAL: usize = 2 * 1024 * 1024;

/// Counts the bytes the planner produced against [`MAX_EXPANDED_TOTAL`].
#[derive(Debug, Default)]
pub(crate) struct Budget {
    used: Cell<usize>,
}

impl Budget {
    /// Counts `bytes` produced for the instruction at `span`.
    pub(crate) fn take(&self, bytes: usize, span: Span) -> Result<(), PlanError> {
        let used = self.used.get().saturating_add(bytes);
        if used > MAX_EXPANDED_TOTAL {
            return Err(PlanError::TooLarge {
                limit: MAX_EXPANDED_TOTAL,
                span,
            });
        }
        self.used.set(used);
        Ok(())
    }
}

/// Where an environment variable of a RUN got its value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SetBy {
    /// An ENV or ARG instruction; the span of its value (or of the name).
    Line(Span),
    /// A `--build-arg` (a proxy variable no ARG declared).
    BuildArg,
    /// The base image's config.
    BaseImage,
}

/// Checks that the kernel accepts the RUN's command and environment; the error points at the line
/// that set an oversized variable when there is one, else at the RUN.
pub(crate) fn check_run_args(
    argv: &[String],
    env: &[(String, String)],
    set_by: &dyn Fn(&str) -> SetBy,
    run_span: Span,
    run_line: usize,
) -> Result<usize, PlanError> {
    let mut total = 0usize;
    for arg in argv {
        let size = arg.len() + 1;
        if size > MAX_ARG_STRLEN {
            return Err(PlanError::ArgumentTooLong {
                message: format!(
                    "the RUN command is {size} bytes, over the kernel's limit of {MAX_ARG_STRLEN} \
                     bytes for one argument (MAX_ARG_STRLEN); move it into a script file"
                ),
                span: run_span,
            });
        }
        total += size + std::mem::size_of::<usize>();
    }
    for (name, value) in env {
        let size = name.len() + 1 + value.len() + 1;
        if size > MAX_ARG_STRLEN {
            let (span, by) = match set_by(name) {
                SetBy::Line(span) => (span, "set here".to_string()),
                SetBy::BuildArg => (run_span, format!("set by --build-arg {name}")),
                SetBy::BaseImage => (run_span, "set by the base image".to_string()),
            };
            return Err(PlanError::ArgumentTooLong {
                message: format!(
                    "environment variable {name} is {size} bytes as `{name}=value` with its NUL \
                     ({by}), over the kernel's limit of {MAX_ARG_STRLEN} bytes for one \
                     environment string (MAX_ARG_STRLEN): the RUN on line {run_line} would fail \
                     with \"argument list too long\""
                ),
                span,
            });
        }
        total += size + std::mem::size_of::<usize>();
    }
    if total > MAX_ARG_TOTAL {
        return Err(PlanError::ArgumentTooLong {
            message: format!(
                "the RUN's command and environment are {total} bytes, over the kernel's limit of \
                 {MAX_ARG_TOTAL} bytes for all arguments and environment strings together (a \
                 quarter of the usual 8 MiB stack)"
            ),
            span: run_span,
        });
    }
    Ok(total)
}
