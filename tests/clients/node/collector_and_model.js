// The Node.js client beyond the product page: create a model whose version metadata is a
// google.protobuf.Struct (written in camelCase: {fields: {runner: {stringValue: ...}}}, as the
// client's bundled protobufjs types spell Struct and Value), read its method signatures, and
// create the collector the end-to-end capture test uses.
//
//   node collector_and_model.js '{"USER_ID", "PAT", "APP_ID", "MODEL_ID", "COLLECTOR_ID", ...}'

const { ClarifaiStub, grpc } = require("clarifai-nodejs-grpc");

const cfg = JSON.parse(process.argv[2]);
const stub = ClarifaiStub.grpc();
const metadata = new grpc.Metadata();
metadata.set("authorization", "Key " + cfg.PAT);
const userAppId = { user_id: cfg.USER_ID, app_id: cfg.APP_ID };

function call(method, request) {
  return new Promise((resolve, reject) => {
    stub[method](request, metadata, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

async function main() {
  const out = {};
  const model = await call("PostModels", {
    user_app_id: userAppId,
    models: [
      {
        id: cfg.MODEL_ID,
        model_type_id: "text-classifier",
        model_version: {
          metadata: { fields: { runner: { stringValue: "builtin:sentiment" } } },
        },
      },
    ],
  });
  out.model = { code: model.status.code, details: model.status.details };
  if (model.status.code !== 10000) throw new Error(JSON.stringify(model.status));
  const version = model.model.model_version;
  out.version_id = version.id;
  out.runner = version.metadata.fields.runner.stringValue;
  out.signatures = version.method_signatures.map((s) => ({
    name: s.name,
    inputs: s.input_fields.map((f) => f.name),
  }));

  const collector = await call("PostCollectors", {
    user_app_id: userAppId,
    collectors: [
      {
        id: cfg.COLLECTOR_ID,
        description: "made with the Node.js client",
        pre_queue_random_sample: 1.0,
        collect_outputs: true,
        collector_source: {
          api_post_model_outputs_collector_source: {
            model_user_id: cfg.USER_ID,
            model_app_id: cfg.APP_ID,
            model_id: cfg.MODEL_ID,
            model_version_id: version.id,
            post_inputs_key_id: cfg.POST_INPUTS_KEY_ID,
            caller_user_id: cfg.CALLER_USER_ID,
          },
        },
      },
    ],
  });
  out.collector = { code: collector.status.code, details: collector.status.details };
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
