#!/bin/bash
# three-tier app instance: nginx in Docker, as the seed runs it by hand.
# Rendered by the compute crate; runs once, as root, at first boot (cloud-init).
set -euxo pipefail

# Docker from the Amazon Linux 2023 repositories.
dnf install -y docker
systemctl enable --now docker.service

# The compose plugin is not in those repositories: a pinned release, fetched through the
# NAT gateway and checked against its known SHA-256 before it is installed.
plugins=/usr/local/lib/docker/cli-plugins
mkdir -p "$plugins"
curl --fail --silent --show-error --location --retry 5 \
  --output "$plugins/docker-compose.download" \
  "https://github.com/docker/compose/releases/download/{{COMPOSE_VERSION}}/docker-compose-linux-x86_64"
echo "{{COMPOSE_SHA256}}  $plugins/docker-compose.download" | sha256sum --check --strict
mv "$plugins/docker-compose.download" "$plugins/docker-compose"
chmod 0755 "$plugins/docker-compose"

# The seed's docker-compose.yml, nginx published on the stack's app port.
mkdir -p {{APP_DIR}}
cat > {{APP_DIR}}/docker-compose.yml <<'COMPOSE'
{{COMPOSE_FILE}}COMPOSE

# Started now and at every boot, once Docker is up.
cat > /etc/systemd/system/three-tier-app.service <<'UNIT'
[Unit]
Description=three-tier app: nginx (docker compose)
Requires=docker.service
After=docker.service network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
# The docker CLI looks for its config under $HOME, which systemd does not set.
Environment=HOME=/root
WorkingDirectory={{APP_DIR}}
ExecStart=/usr/bin/docker compose up -d
ExecStop=/usr/bin/docker compose down

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now three-tier-app.service
