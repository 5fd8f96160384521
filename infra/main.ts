import { createAnoleApp } from './app.ts';

/** `npx cdk synth` / `npx cdk deploy` run this (cdk.json: `npx tsx infra/main.ts`). */
createAnoleApp().app.synth();
