//! The floor: a policy that does no work. `evaluate` lifts the same arguments the default
//! policy gets (state bytes, a submission with strings, `now`) and returns an accepting
//! decision carrying the state back, so benches can tell the boundary's cost from the
//! policy's.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "restriction-policy",
    });

    use exports::quench::policy::policy as w;

    struct Component;
    export!(Component);

    /// No settings, no logic.
    struct Floor;

    impl w::Guest for Component {
        type Engine = Floor;
    }

    impl w::GuestEngine for Floor {
        fn create(_config: String) -> Result<w::Engine, Vec<w::ConfigError>> {
            Ok(w::Engine::new(Floor))
        }

        fn state_format(&self) -> String {
            "quench-floor/1".into()
        }

        fn connectors(&self) -> Vec<w::ConnectorSpec> {
            Vec::new()
        }

        fn evaluate(&self, state: Vec<u8>, _submission: w::Submission, _now: i64) -> w::Decision {
            w::Decision {
                verdict: w::Verdict {
                    action: w::Action::Accept,
                    reply: None,
                },
                state,
                restriction: None,
                change: w::RestrictionChange::None,
                alerts: Vec::new(),
            }
        }

        fn unblock(
            &self,
            _state: Vec<u8>,
            _request: w::UnblockRequest,
            _now: i64,
        ) -> Result<w::UnblockGranted, w::UnblockError> {
            Err(w::UnblockError::NotRestricted)
        }

        fn describe(
            &self,
            _state: Vec<u8>,
            _entity: w::Entity,
            _now: i64,
        ) -> Result<Option<w::Restriction>, String> {
            Ok(None)
        }

        fn idle(&self, state: Vec<u8>, _now: i64) -> bool {
            state.is_empty()
        }

        fn render_bounce(&self, _request: w::BounceRequest) -> String {
            String::new()
        }
    }
}
