"""Development tooling (local control plane, benchmarks, load generators, stubs, test
helpers, calibration). Ships as `tierserve-dev`, never in the runtime wheel."""
