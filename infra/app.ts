import { App, Validations, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AnoleStack } from './anole-stack.ts';
import { settingsFromContext } from './settings.ts';

/**
 * The CDK app: one environment-agnostic stack (synth needs no credentials and does no lookups),
 * configured from context (settings.ts), checked by cdk-nag's AWS Solutions pack on every synth.
 * The CLI runs it through main.ts; tests build it with their own context.
 */
export function createAnoleApp(props: AppProps = {}): { app: App; stack: AnoleStack } {
  const app = new App(props);
  const settings = settingsFromContext((key) => app.node.tryGetContext(key));
  const stack = new AnoleStack(app, String(app.node.tryGetContext('anole:stackName') ?? 'AnoleServe'), {
    settings,
    description: 'Anole Serve: a Lambda API and scale-to-zero GPU workers on ECS',
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}
