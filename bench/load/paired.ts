/**
 * Paired rounds: the CPU per delivered packet of two systems at one load,
 * measured in turns, several times. The capacity search measures each
 * system once per load, a minute or more apart, so a change in the rest
 * of the machine between them moves their ratio. Rounds that alternate
 * the order and take the median cancel most of that drift.
 *
 * @module
 */

import {
  type CapacityScenario,
  type LoadSettings,
  runCapacitySearch,
  type StepResult,
} from "./capacity.ts";
import { median } from "./median.ts";

/** Settings of {@linkcode runPairedRounds}. */
export interface PairedSettings {
  /** Load of every round, in participants. */
  participants: number;
  rounds: number;
}

/** One round: both systems measured at the same load. */
export interface PairedRound {
  round: number;
  /** Name of the system measured first in this round. */
  firstMeasured: string;
  firstUs: number;
  secondUs: number;
  /** firstUs / secondUs. */
  ratio: number;
  /** Both windows passed the step criteria. */
  bothPassed: boolean;
}

/** Result of {@linkcode runPairedRounds}. */
export interface PairedResult {
  first: string;
  second: string;
  participants: number;
  rounds: PairedRound[];
  /** Median of the round ratios, or null when no round finished. */
  ratio: number | null;
  /** Error that stopped the rounds, or null. */
  error: string | null;
}

/** Measures `scenario` once at `participants`, from a fresh start. */
async function measureOnce(
  scenario: CapacityScenario,
  settings: LoadSettings,
  participants: number,
): Promise<StepResult> {
  const result = await runCapacitySearch(
    { ...scenario, levels: [participants] },
    settings,
  );
  const step = result.steps[0];
  if (step === undefined) {
    throw new Error(
      `${scenario.name} measured nothing at ${participants} participants: ` +
        result.stoppedBecause,
    );
  }
  return step;
}

/**
 * Measures `first` and `second` at the same load in `rounds` rounds. Odd
 * rounds measure `first` first and even rounds `second` first, so that a
 * steady drift of the machine favours neither.
 */
export async function runPairedRounds(
  first: CapacityScenario,
  second: CapacityScenario,
  settings: LoadSettings,
  paired: PairedSettings,
): Promise<PairedResult> {
  const result: PairedResult = {
    first: first.name,
    second: second.name,
    participants: paired.participants,
    rounds: [],
    ratio: null,
    error: null,
  };
  try {
    for (let round = 1; round <= paired.rounds; round++) {
      const firstGoesFirst = round % 2 === 1;
      const order = firstGoesFirst ? [first, second] : [second, first];
      const steps: StepResult[] = [];
      for (const scenario of order) {
        steps.push(
          await measureOnce(scenario, settings, paired.participants),
        );
      }
      const [a, b] = firstGoesFirst ? steps : [steps[1]!, steps[0]!];
      const entry: PairedRound = {
        round,
        firstMeasured: order[0]!.name,
        firstUs: a!.cpuPerDeliveredUs,
        secondUs: b!.cpuPerDeliveredUs,
        ratio: a!.cpuPerDeliveredUs / b!.cpuPerDeliveredUs,
        bothPassed: a!.pass && b!.pass,
      };
      result.rounds.push(entry);
      console.error(
        `paired ${first.name} ÷ ${second.name}, round ${round}: ` +
          `${entry.firstUs.toFixed(2)} / ${entry.secondUs.toFixed(2)} µs = ` +
          entry.ratio.toFixed(2),
      );
    }
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
    console.error(`paired rounds: ${result.error}`);
  }
  if (result.rounds.length > 0) {
    result.ratio = median(result.rounds.map((round) => round.ratio));
  }
  return result;
}
