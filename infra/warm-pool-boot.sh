#!/bin/bash
# Runs at every boot of a GPU instance when the stack has a warm pool (systemd unit anole-warm-pool).
# Entering the pool (target state Warmed:*), it copies the model bundle and the worker image onto this
# instance's volume, so a later start from the pool skips both downloads; then, on every boot, it
# releases the launch lifecycle hook that holds the instance until this is done.
# The AWS CLI runs from its container image (host network, so the instance role is reachable).
set -u
REGION='__REGION__'
HOOK='__HOOK__'
MODEL_URI='__MODEL_URI__'
MODEL_DIR='__MODEL_DIR__'
WORKER_IMAGE='__WORKER_IMAGE__'
AWS_CLI_IMAGE='__AWS_CLI_IMAGE__'

TOKEN=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' http://169.254.169.254/latest/api/token)
imds() { curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" "http://169.254.169.254/latest/meta-data/$1"; }
aws() { docker run --rm --network host -v "$MODEL_DIR:$MODEL_DIR" "$AWS_CLI_IMAGE" --region "$REGION" "$@"; }

INSTANCE=$(imds instance-id)
STATE=''
# The target state appears once the Auto Scaling group has decided where this instance goes.
for _ in $(seq 1 60); do
  STATE=$(imds autoscaling/target-lifecycle-state || true)
  [ -n "$STATE" ] && break
  sleep 5
done
echo "anole-warm-pool: instance $INSTANCE, target state '$STATE'"

if [[ "$STATE" == Warmed:* ]]; then
  mkdir -p "$MODEL_DIR"
  aws s3 sync "$MODEL_URI" "$MODEL_DIR" --delete --only-show-errors --no-progress \
    || echo "anole-warm-pool: model prefetch failed; the task's model-sync container will fetch it"
  REGISTRY="${WORKER_IMAGE%%/*}"
  { aws ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY" && docker pull "$WORKER_IMAGE"; } \
    || echo "anole-warm-pool: image prefetch failed; ECS will pull it"
fi

ASG=$(aws autoscaling describe-auto-scaling-instances --instance-ids "$INSTANCE" \
  --query 'AutoScalingInstances[0].AutoScalingGroupName' --output text)
aws autoscaling complete-lifecycle-action --lifecycle-hook-name "$HOOK" --auto-scaling-group-name "$ASG" \
  --instance-id "$INSTANCE" --lifecycle-action-result CONTINUE \
  || echo "anole-warm-pool: no lifecycle action to complete (already done or timed out)"
