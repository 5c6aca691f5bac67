// The chaos run is repeatable from its seed: the same seed picks the same faults, targets and
// spans in the same order (timing on a shared machine still varies, so two runs with one seed
// are similar, not identical). The generator is the test kit's.
export { SeededRandom } from '@sched/testkit';
