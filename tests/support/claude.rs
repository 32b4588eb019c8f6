//! The Claude Code CLI driver: runs the real `claude -p` against a gateway,
//! in a throw-away HOME, with a bound on its run time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{find_on_path, repo_root, Gateway};

/// `CLAUDE_BIN`, else `<repo>/.tools/claude/node_modules/.bin/claude` (installed by
/// ./scripts/test.sh), else `claude` on PATH.
pub fn claude_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CLAUDE_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let local = repo_root().join(".tools/claude/node_modules/.bin/claude");
    if local.exists() {
        return local;
    }
    if let Some(p) = find_on_path("claude") {
        return p;
    }
    panic!(
        "Claude Code CLI not found (checked $CLAUDE_BIN, {}, PATH). Run the tests with ./scripts/test.sh, \
         which installs it (npm install --prefix .tools/claude @anthropic-ai/claude-code).",
        local.display()
    );
}

/// One `claude -p` run through a gateway.
pub struct Claude {
    prompt: String,
    api_key: String,
    allowed_tools: Option<String>,
    auth_token: Option<String>,
    work_dir: Option<PathBuf>,
    timeout: Duration,
}

impl Claude {
    /// `claude -p <prompt>`, with `ANTHROPIC_API_KEY=api_key` (the client's key).
    pub fn prompt(prompt: &str, api_key: &str) -> Claude {
        Claude {
            prompt: prompt.to_owned(),
            api_key: api_key.to_owned(),
            allowed_tools: None,
            auth_token: None,
            work_dir: None,
            timeout: Duration::from_secs(120),
        }
    }

    /// `--allowedTools <tools>`, e.g. `Bash(cat:*)`.
    pub fn allowed_tools(mut self, tools: &str) -> Claude {
        self.allowed_tools = Some(tools.to_owned());
        self
    }

    /// `ANTHROPIC_AUTH_TOKEN=token` (sent as `authorization: Bearer`)
    /// instead of an API key.
    pub fn auth_token(mut self, token: &str) -> Claude {
        self.auth_token = Some(token.to_owned());
        self
    }

    /// Runs in `dir` (default: the throw-away HOME).
    pub fn in_dir(mut self, dir: &Path) -> Claude {
        self.work_dir = Some(dir.to_owned());
        self
    }

    /// Runs it with `ANTHROPIC_BASE_URL` = the gateway; panics after the timeout.
    pub fn run(self, gw: &Gateway) -> Finished {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(claude_bin());
        cmd.args(["-p", &self.prompt]);
        if let Some(tools) = &self.allowed_tools {
            cmd.args(["--allowedTools", tools]);
        }
        cmd.current_dir(self.work_dir.as_deref().unwrap_or(home.path()))
            .env("HOME", home.path())
            .env("ANTHROPIC_BASE_URL", gw.base_url())
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY");
        match &self.auth_token {
            Some(token) => cmd
                .env("ANTHROPIC_AUTH_TOKEN", token)
                .env_remove("ANTHROPIC_API_KEY"),
            None => cmd
                .env("ANTHROPIC_API_KEY", &self.api_key)
                .env_remove("ANTHROPIC_AUTH_TOKEN"),
        };
        run_with_timeout(cmd, home.path(), self.timeout)
    }
}

/// Output of a finished child process.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run a command to completion, killing it after `timeout`. Output goes to files
/// in `dir` (no pipe deadlocks).
pub fn run_with_timeout(mut cmd: Command, dir: &Path, timeout: Duration) -> Finished {
    let out_path = dir.join("cmd.stdout");
    let err_path = dir.join("cmd.stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let f = Finished {
        success: status.is_some_and(|s| s.success()),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    };
    assert!(
        status.is_some(),
        "{cmd:?} timed out after {timeout:?}: {f:?}"
    );
    f
}
