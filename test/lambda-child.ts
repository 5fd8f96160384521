import { pathToFileURL } from 'node:url';
import { installLambdaGlobals, invokeFunctionUrl, type StreamingHandler } from './lambda-runtime.ts';

/**
 * `node --import tsx test/lambda-child.ts MODULE EXPORT METHOD PATH`: loads a handler module as the
 * Lambda runtime does (its configuration in this process's environment), sends it one Function URL
 * request and prints the response as JSON. A process of its own, so that a bundle outside the
 * repository resolves only what it carries, and its environment is the function's alone.
 */
const [modulePath, exportName, method, path] = process.argv.slice(2);
installLambdaGlobals();
const handler = (await import(pathToFileURL(modulePath).href))[exportName] as StreamingHandler;
const response = await invokeFunctionUrl(handler, method, path);
// the handler's S3 and SQS clients keep sockets open: leave once the answer is out
process.stdout.write(JSON.stringify(response), () => process.exit(0));
