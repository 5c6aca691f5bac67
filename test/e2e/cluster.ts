// The real-daemon test cluster lives in @sched/chaos (the chaos suite and benchmarks use it too).
export * from '@sched/chaos';
