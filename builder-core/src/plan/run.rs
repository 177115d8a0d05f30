//! Planning RUN: the command (shell form, heredoc scripts), its environment, network and mounts.

use std::collections::{BTreeMap, BTreeSet};

use kiln_dockerfile_parser::MountType;
use kiln_dockerfile_parser::block::{BlockRef, CommandView};

use super::PlanError;
use super::limits::{SetBy, check_run_args};
use super::scope::PROXY_ARGS;
use super::stage::{StageState, clean_abs, view_of};
use crate::graph::{InlineFile, Network, Op, RunMount, RunOp, SourceRef};

impl StageState<'_> {
    pub(super) fn dispatch_run(
        &mut self,
        block: BlockRef<'_>,
        command: CommandView<'_>,
    ) -> Result<(), PlanError> {
        let mut inline = Vec::new();
        let heredocs = block.heredocs();
        let argv = match &command {
            CommandView::Shell(w) if !heredocs.is_empty() => {
                if let [h] = heredocs
                    && kiln_dockerfile_parser::is_heredoc_marker(w.text.trim())
                {
                    // `RUN <<EOF` (or `<< EOF`, `3<<EOF`): the body is the script.
                    let body = h.body().into_owned();
                    let argv = if body.starts_with("#!") {
                        let path = format!("/dev/pipes/{}", h.name);
                        inline.push(InlineFile {
                            name: path.clone(),
                            content: body,
                        });
                        vec![path]
                    } else {
                        self.shell_argv(body)
                    };
                    return self.finish_run(block, argv, inline);
                }
                // The shell reads heredocs itself: hand it the line and the bodies.
                let mut script = w.text.to_string();
                for h in heredocs {
                    script.push('\n');
                    script.push_str(&h.content);
                    if !h.content.ends_with('\n') && !h.content.is_empty() {
                        script.push('\n');
                    }
                    script.push_str(&h.name);
                }
                self.shell_argv(script)
            }
            _ => self.command_argv(&command),
        };
        self.finish_run(block, argv, inline)
    }

    fn finish_run(
        &mut self,
        block: BlockRef<'_>,
        argv: Vec<String>,
        inline: Vec<InlineFile>,
    ) -> Result<(), PlanError> {
        let args = self.run_args();
        let mut env: BTreeMap<String, String> = self.config.env_pairs().into_iter().collect();
        for (k, v) in &args {
            env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let env_not_cached: BTreeSet<String> = PROXY_ARGS
            .iter()
            .filter(|p| self.input.opts.build_args.contains_key(**p))
            .map(|p| p.to_string())
            .collect();
        // A privilege the person running the build did not grant: an error at the flag asking.
        let not_granted = |flag: &str, value: &str, entitlement: &str| PlanError::Invalid {
            message: format!(
                "RUN --{flag}={value} needs the {entitlement} entitlement: grant it with `kiln build --allow {entitlement}`"
            ),
            span: block
                .flags()
                .find(|f| f.name == flag)
                .map_or(self.span_of(block), |f| f.span),
        };
        // Checked while parsing: `sandbox` or `insecure`, `default`, `none` or `host`.
        let insecure = block
            .flag_value("security")
            .is_some_and(|w| w.text == "insecure");
        let network_mode = block.flag_value("network").map(|w| w.text);
        if insecure && !self.input.opts.allow.security_insecure {
            return Err(not_granted("security", "insecure", "security.insecure"));
        }
        if network_mode == Some("host") && !self.input.opts.allow.network_host {
            return Err(not_granted("network", "host", "network.host"));
        }
        let network = match network_mode {
            Some("host") => Network::Host,
            Some("none") => Network::None,
            _ => self.input.opts.network,
        };
        let mut mounts = Vec::new();
        for m in block.mounts() {
            if let Some(message) = &m.invalid {
                // Bad options fail the build only if it runs this stage, as in BuildKit.
                self.deferred.get_or_insert(PlanError::Invalid {
                    message: format!("invalid --mount: {message}"),
                    span: m.raw.span,
                });
                continue;
            }
            let spec = if m.raw.has_variables() {
                let expanded = self.expand(view_of(&m.raw), "--mount")?;
                kiln_dockerfile_parser::MountSpec::parse(&expanded).map_err(|e| {
                    PlanError::Invalid {
                        message: format!("invalid --mount: {e}", e = crate::report::chain(&e)),
                        span: m.raw.span,
                    }
                })?
            } else {
                m
            };
            mounts.push(self.run_mount(&spec)?);
        }
        let history_args: Vec<String> = args
            .iter()
            .filter(|(k, _)| !env_not_cached.contains(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let created_by = if history_args.is_empty() {
            format!("RUN {}", argv.join(" "))
        } else {
            format!(
                "RUN |{} {} {}",
                history_args.len(),
                history_args.join(" "),
                argv.join(" ")
            )
        };
        let env: Vec<(String, String)> = env.into_iter().collect();
        let set_by = |name: &str| match self.set_at.get(name) {
            Some(span) => SetBy::Line(*span),
            None if self.input.opts.build_args.contains_key(name) => SetBy::BuildArg,
            None => SetBy::BaseImage,
        };
        let span = self.span_of(block);
        let size = check_run_args(&argv, &env, &set_by, span, self.line_of(block))?;
        self.input.budget.take(size, span)?;
        let op = RunOp {
            argv,
            env,
            env_not_cached,
            user: self.config.user_or_root().to_string(),
            cwd: self.config.workdir_or_root().to_string(),
            network,
            mounts,
            inline,
            insecure,
            settings: self.input.opts.step_settings.clone(),
        };
        self.push(block, Op::Run(op), created_by);
        Ok(())
    }

    fn run_mount(&mut self, m: &kiln_dockerfile_parser::MountSpec) -> Result<RunMount, PlanError> {
        let span = m.raw.span;
        let target = m.target.as_deref().map(|t| clean_abs(&self.abs_path(t)));
        let need_target = |t: Option<String>| {
            t.ok_or_else(|| PlanError::Invalid {
                message: "mount target is required".into(),
                span,
            })
        };
        Ok(match m.kind {
            MountType::Bind => {
                let from = match &m.from {
                    Some(f) => self.source_ref(f, span)?,
                    None => SourceRef::Context,
                };
                RunMount::Bind {
                    from,
                    source: m.source.clone().unwrap_or_else(|| "/".into()),
                    target: need_target(target)?,
                    readonly: m.is_readonly(),
                }
            }
            MountType::Cache => {
                let target = need_target(target)?;
                RunMount::Cache {
                    id: m.id.clone().unwrap_or_else(|| target.clone()),
                    target,
                    sharing: match m.sharing {
                        Some(kiln_dockerfile_parser::MountSharing::Private) => "private",
                        Some(kiln_dockerfile_parser::MountSharing::Locked) => "locked",
                        _ => "shared",
                    }
                    .into(),
                    readonly: m.is_readonly(),
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                    mode: m.mode.unwrap_or(0o755),
                }
            }
            MountType::Tmpfs => RunMount::Tmpfs {
                target: need_target(target)?,
                size: m.size,
            },
            MountType::Secret => {
                let id =
                    m.id.clone()
                        .or_else(|| {
                            m.target
                                .as_deref()
                                .and_then(|t| t.rsplit('/').next())
                                .map(str::to_string)
                        })
                        .ok_or_else(|| PlanError::Invalid {
                            message: "secret mount needs an id or a target".into(),
                            span,
                        })?;
                let target = if m.env.is_some() && m.target.is_none() {
                    None
                } else {
                    Some(target.unwrap_or_else(|| format!("/run/secrets/{id}")))
                };
                RunMount::Secret {
                    id,
                    target,
                    env: m.env.clone(),
                    required: m.required.unwrap_or(false),
                    mode: m.mode.unwrap_or(0o400),
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                }
            }
            MountType::Ssh => RunMount::Ssh {
                id: m.id.clone().unwrap_or_else(|| "default".into()),
                target: target.unwrap_or_else(|| "/run/buildkit/ssh_agent.0".into()),
                required: m.required.unwrap_or(false),
                mode: m.mode.unwrap_or(0o600),
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
            },
        })
    }
}
