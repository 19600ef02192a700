//! `podFailurePolicy` and `successPolicy` matching, as upstream's `pod_failure_policy.go` and
//! `success_policy.go` decide it.
//!
//! Pod failure policy: rules are tried in order and the first matching rule wins. An `onExitCodes`
//! rule matches the first terminated container (regular containers first, then init containers)
//! with a non-zero exit code that satisfies `In`/`NotIn` (restricted to `containerName` when set).
//! An `onPodConditions` rule matches when the pod has a condition with the same type and status as
//! one of the patterns. The policy is only consulted for failed pods.

use k8s_openapi::api::batch::v1::{PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, SuccessPolicy};

use super::cached_pod::{ContainerRef, PodFacts};

use super::indexes::Indexes;

/// The action of the rule that matched a failed pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureAction {
    /// Fail the whole Job.
    FailJob,
    /// Fail the pod's index (backoffLimitPerIndex).
    FailIndex,
    /// Do not count the failure against any limit.
    Ignore,
    /// Count the failure as usual.
    Count,
}

impl FailureAction {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "FailJob" => Some(Self::FailJob),
            "FailIndex" => Some(Self::FailIndex),
            "Ignore" => Some(Self::Ignore),
            "Count" => Some(Self::Count),
            _ => None,
        }
    }
}

/// The outcome of matching one failed pod against the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureMatch {
    /// The matched rule's action, `None` when no rule matched (or there is no policy).
    pub action: Option<FailureAction>,
    /// Whether the failure counts towards `backoffLimit` / `backoffLimitPerIndex`.
    pub counts: bool,
    /// The Job failure message, for a `FailJob` rule.
    pub fail_job_message: Option<String>,
}

impl FailureMatch {
    const NONE: FailureMatch = FailureMatch { action: None, counts: true, fail_job_message: None };
}

fn pod_ref<P: PodFacts + ?Sized>(pod: &P) -> String {
    let meta = pod.pod_meta();
    format!("{}/{}", meta.namespace.as_deref().unwrap_or(""), meta.name.as_deref().unwrap_or(""))
}

/// Matches a failed pod against the policy (`None` policy: counted, no action).
pub fn match_pod_failure_policy<P: PodFacts + ?Sized>(policy: Option<&PodFailurePolicy>, pod: &P) -> FailureMatch {
    let Some(policy) = policy else { return FailureMatch::NONE };
    for (index, rule) in policy.rules.iter().enumerate() {
        let Some(action) = FailureAction::parse(&rule.action) else { continue };
        let message = if let Some(req) = &rule.on_exit_codes {
            let Some(cs) = matching_container(pod.container_statuses(), req)
                .or_else(|| matching_container(pod.init_container_statuses(), req))
            else {
                continue;
            };
            let code = cs.terminated.map_or(0, |t| t.0);
            format!(
                "Container {} for pod {} failed with exit code {} matching {} rule at index {}",
                cs.name,
                pod_ref(pod),
                code,
                rule.action,
                index
            )
        } else if let Some(patterns) = &rule.on_pod_conditions {
            let Some(cond) =
                pod.conditions().find(|c| patterns.iter().any(|p| p.type_ == c.type_ && p.status == c.status))
            else {
                continue;
            };
            format!(
                "Pod {} has condition {} matching {} rule at index {}",
                pod_ref(pod),
                cond.type_,
                rule.action,
                index
            )
        } else {
            continue;
        };
        return match action {
            FailureAction::Ignore => FailureMatch { action: Some(action), counts: false, fail_job_message: None },
            FailureAction::FailJob => {
                FailureMatch { action: Some(action), counts: true, fail_job_message: Some(message) }
            }
            _ => FailureMatch { action: Some(action), counts: true, fail_job_message: None },
        };
    }
    FailureMatch::NONE
}

fn matching_container<'a>(
    mut statuses: impl Iterator<Item = ContainerRef<'a>>,
    req: &PodFailurePolicyOnExitCodesRequirement,
) -> Option<ContainerRef<'a>> {
    statuses.find(|cs| {
        let Some((exit_code, _)) = cs.terminated else { return false };
        if req.container_name.as_ref().is_some_and(|n| *n != cs.name) || exit_code == 0 {
            return false;
        }
        match req.operator.as_str() {
            "In" => req.values.contains(&exit_code),
            "NotIn" => !req.values.contains(&exit_code),
            _ => false,
        }
    })
}

/// Matches the succeeded indexes against the success policy; `Some("Matched rules at index N")` for
/// the first rule satisfied. A rule with `succeededIndexes` needs all of them succeeded, or at least
/// `succeededCount` of them; a rule with only `succeededCount` needs that many succeeded indexes.
pub fn match_success_policy(policy: Option<&SuccessPolicy>, completions: i32, succeeded: &Indexes) -> Option<String> {
    let policy = policy?;
    if succeeded.is_empty() {
        return None;
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(required) = &rule.succeeded_indexes {
            let required = Indexes::parse(required, completions);
            if required.is_empty() {
                continue;
            }
            let overlap = required.overlap_count(succeeded);
            overlap == required.count() || rule.succeeded_count.is_some_and(|c| overlap >= c.max(0) as usize)
        } else if let Some(c) = rule.succeeded_count {
            succeeded.count() >= c.max(0) as usize
        } else {
            false
        };
        if matched {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::testing::{JobBuilder, PodBuilder};
    use k8s_openapi::api::batch::v1::{
        PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule, SuccessPolicyRule,
    };
    use k8s_openapi::api::core::v1::Pod;

    fn exit_rule(action: &str, op: &str, values: &[i32], container: Option<&str>) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: container.map(Into::into),
                operator: op.into(),
                values: values.to_vec(),
            }),
            on_pod_conditions: None,
        }
    }

    fn cond_rule(action: &str, type_: &str) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: None,
            on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                type_: type_.into(),
                status: "True".into(),
            }]),
        }
    }

    #[test]
    fn pod_failure_policy_table() {
        let job = JobBuilder::new("j").build();
        let failed_42 = PodBuilder::for_job(&job).name("p").failed().exit_code("main", 42).build();
        let failed_1_sidecar = PodBuilder::for_job(&job).name("p").failed().exit_code("side", 1).build();
        let disrupted = PodBuilder::for_job(&job).name("p").failed().condition("DisruptionTarget", "True").build();
        type Case<'a> = (&'a str, Vec<PodFailurePolicyRule>, &'a Pod, Option<FailureAction>, bool, Option<&'a str>);
        let cases: Vec<Case> = vec![
            ("no rules: counted, no action", vec![], &failed_42, None, true, None),
            (
                "FailJob on exit code In",
                vec![exit_rule("FailJob", "In", &[42], None)],
                &failed_42,
                Some(FailureAction::FailJob),
                true,
                Some("Container main for pod default/p failed with exit code 42 matching FailJob rule at index 0"),
            ),
            ("exit code not in list", vec![exit_rule("FailJob", "In", &[1, 2], None)], &failed_42, None, true, None),
            (
                "NotIn matches other codes",
                vec![exit_rule("Ignore", "NotIn", &[1], None)],
                &failed_42,
                Some(FailureAction::Ignore),
                false,
                None,
            ),
            (
                "containerName restricts the match",
                vec![exit_rule("FailJob", "In", &[1], Some("main"))],
                &failed_1_sidecar,
                None,
                true,
                None,
            ),
            (
                "first matching rule wins",
                vec![
                    exit_rule("FailJob", "In", &[7], None),
                    exit_rule("Count", "In", &[42], None),
                    exit_rule("FailJob", "In", &[42], None),
                ],
                &failed_42,
                Some(FailureAction::Count),
                true,
                None,
            ),
            (
                "DisruptionTarget ignored",
                vec![cond_rule("Ignore", "DisruptionTarget")],
                &disrupted,
                Some(FailureAction::Ignore),
                false,
                None,
            ),
            (
                "pod condition FailJob message names the condition and rule index",
                vec![exit_rule("Ignore", "In", &[3], None), cond_rule("FailJob", "DisruptionTarget")],
                &disrupted,
                Some(FailureAction::FailJob),
                true,
                Some("Pod default/p has condition DisruptionTarget matching FailJob rule at index 1"),
            ),
            (
                "FailIndex counts",
                vec![exit_rule("FailIndex", "In", &[42], None)],
                &failed_42,
                Some(FailureAction::FailIndex),
                true,
                None,
            ),
            ("unknown action is skipped", vec![exit_rule("Explode", "In", &[42], None)], &failed_42, None, true, None),
        ];
        for (name, rules, pod, action, counts, msg) in cases {
            let policy = PodFailurePolicy { rules };
            let m = match_pod_failure_policy(Some(&policy), pod);
            assert_eq!(m.action, action, "{name}");
            assert_eq!(m.counts, counts, "{name}");
            assert_eq!(m.fail_job_message.as_deref(), msg, "{name}");
            // The cached form and the pod decoded from its JSON decide alike.
            let cached = crate::job::cached_pod::CachedPod::from(pod);
            assert_eq!(match_pod_failure_policy(Some(&policy), &cached), m, "{name}: cached");
            let decoded: crate::job::cached_pod::CachedPod =
                serde_json::from_value(serde_json::to_value(pod).unwrap()).unwrap();
            assert_eq!(match_pod_failure_policy(Some(&policy), &decoded), m, "{name}: decoded");
        }
    }

    #[test]
    fn success_policy_table() {
        let rule = |ix: Option<&str>, count: Option<i32>| SuccessPolicyRule {
            succeeded_indexes: ix.map(Into::into),
            succeeded_count: count,
        };
        let cases: Vec<(&str, Vec<SuccessPolicyRule>, &str, Option<&str>)> = vec![
            ("nothing succeeded", vec![rule(None, Some(1))], "", None),
            ("succeededCount reached", vec![rule(None, Some(2))], "1,3", Some("Matched rules at index 0")),
            ("succeededCount not reached", vec![rule(None, Some(3))], "1,3", None),
            ("all succeededIndexes", vec![rule(Some("0-2"), None)], "0-3", Some("Matched rules at index 0")),
            ("missing one of succeededIndexes", vec![rule(Some("0-2"), None)], "0,2,3", None),
            (
                "succeededIndexes with count",
                vec![rule(Some("0-4"), Some(2))],
                "1,4,7",
                Some("Matched rules at index 0"),
            ),
            (
                "second rule matches",
                vec![rule(Some("5"), None), rule(None, Some(1))],
                "1",
                Some("Matched rules at index 1"),
            ),
            ("garbage succeededIndexes rule is skipped", vec![rule(Some("x"), None)], "1", None),
        ];
        for (name, rules, succeeded, want) in cases {
            let policy = SuccessPolicy { rules };
            let got = match_success_policy(Some(&policy), 10, &Indexes::parse(succeeded, 10));
            assert_eq!(got.as_deref(), want, "{name}");
        }
    }
}
