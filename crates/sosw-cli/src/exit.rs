//! The exit codes of every `sosw` command (docs/cli.md):
//!
//! | code | [`Exit`] | meaning |
//! |---|---|---|
//! | 0 | `Ok` | done; for `status` / `check` / `submit --wait`: nothing wrong found |
//! | 1 | `Failure` | the command could not do its work (AWS error, unreadable file, bad config...); the message is on stderr |
//! | 2 | `Usage` | bad arguments (clap's message on stderr) |
//! | 3 | `Problems` | the command ran and found problems an operator must look at (listed on stdout) |

use std::process::ExitCode;

/// How a `sosw` command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done, nothing wrong found.
    Ok,
    /// 1: the command could not do its work.
    Failure,
    /// 2: bad arguments.
    Usage,
    /// 3: the command ran and found problems (`status`, `check`, `submit --wait`).
    Problems,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Failure => 1,
            Self::Usage => 2,
            Self::Problems => 3,
        }
    }

    /// `Ok` when nothing was found, `Problems` otherwise.
    pub fn problems_if(found: bool) -> Self {
        if found {
            Self::Problems
        } else {
            Self::Ok
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codes_are_the_documented_ones() {
        let codes: Vec<u8> = [Exit::Ok, Exit::Failure, Exit::Usage, Exit::Problems]
            .iter()
            .map(|e| e.code())
            .collect();
        assert_eq!(codes, [0, 1, 2, 3]);
        // clap exits with 2 on a usage error: the same code as ours.
        assert_eq!(
            clap::Error::new(clap::error::ErrorKind::InvalidValue).exit_code(),
            2
        );
        assert_eq!(Exit::problems_if(true), Exit::Problems);
        assert_eq!(Exit::problems_if(false), Exit::Ok);
    }
}
