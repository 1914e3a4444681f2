import { type NetworkSection, networkScenarioExample, networkSectionSchema } from '@ibex/spec';

/** The scenario of issue 3 (libs/spec `networkScenarioExample`), parsed with its defaults. */
export const scenarioSpec = (): NetworkSection => networkSectionSchema.parse(networkScenarioExample);
