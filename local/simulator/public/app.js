// The simulator page: plain browser JavaScript, no build step. Each panel is one simulated user
// on one channel; the server (local/simulator/server.ts) plays the vendor against the local stack.
'use strict';

const CHANNEL_NAMES = { wechat: 'WeChat', whatsapp: 'WhatsApp', sms: 'SMS', voice: 'Voice' };
// Which channels take which sample files (SMS: MMS pictures; a call has no attachments).
const MEDIA = { image: ['wechat', 'whatsapp', 'sms'], voice: ['wechat', 'whatsapp'] };
const STORE_KEY = 'llm-gateway-simulator-panels';
let config;
let panelCount = 0;

async function api(path, body) {
  const res = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const data = await res.json();
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

function savePanels() {
  const panels = [...document.querySelectorAll('.phone')].map((el) => el.state);
  localStorage.setItem(STORE_KEY, JSON.stringify(panels));
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(1)} s`;
}

function render(panel, conv) {
  const chat = panel.querySelector('.chat');
  const nearBottom = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 40;
  chat.replaceChildren();
  for (const line of conv.lines) {
    const li = document.createElement('li');
    li.className = `line ${line.from}`;
    const bubble = document.createElement('div');
    bubble.className = 'bubble';
    bubble.textContent = line.text;
    const meta = document.createElement('div');
    meta.className = 'meta';
    const time = new Date(line.atMs).toLocaleTimeString();
    meta.textContent = line.from === 'user' ? `${time}${conv.channel === 'whatsapp' ? (line.read ? ' ✓✓ read' : ' ✓') : ''}` : `${time} · ${line.via}`;
    if (line.read) meta.classList.add('read');
    bubble.append(meta);
    li.append(bubble);
    if (line.from === 'user' || line.timeline.length > 0) {
      const steps = document.createElement('ol');
      steps.className = 'timeline';
      steps.setAttribute('aria-label', 'Protocol timeline');
      for (const step of line.timeline) {
        const item = document.createElement('li');
        item.textContent = `+${seconds(step.atMs)} ${step.text}`;
        steps.append(item);
      }
      li.append(steps);
    }
    chat.append(li);
  }
  panel.querySelector('.typing').hidden = !conv.typing;
  panel.querySelector('.window-closed').checked = conv.windowClosed;
  if (nearBottom) chat.scrollTop = chat.scrollHeight;
}

function applyChannel(panel) {
  const { channel } = panel.state;
  panel.querySelector('.wechat-options').hidden = channel !== 'wechat';
  panel.querySelector('.hangup').hidden = channel !== 'voice';
  panel.querySelector('.whatsapp-options').hidden = channel !== 'whatsapp';
  panel.querySelector('.send-image').hidden = !MEDIA.image.includes(channel);
  panel.querySelector('.send-voice').hidden = !MEDIA.voice.includes(channel);
  panel.querySelector('.who').textContent = `${panel.state.user} · ${CHANNEL_NAMES[channel]}`;
  panel.querySelector('.message').placeholder = channel === 'voice' ? 'Say something (the call starts on the first Send)' : 'Message';
  panel.querySelector('.screen').dataset.channel = channel;
  for (const radio of panel.querySelectorAll('.channels input')) {
    radio.checked = radio.value === channel;
    radio.disabled = config ? !config.channels[radio.value] : false;
  }
  panel.version = -1;
}

function modeNote(panel) {
  const note = panel.querySelector('.mode-note');
  const wanted = panel.querySelector('.reply-mode').value;
  if (!config || !config.wechat) return;
  note.textContent =
    wanted === config.wechat.replyMode
      ? `The gateway runs in ${wanted === 'passive' ? 'passive' : 'customer-service'} mode. WeChat waits ${seconds(config.wechat.limitMs)} per delivery, ${config.wechat.deliveries} deliveries.`
      : `The reply mode is the gateway's setting: stop npm start and run WECHAT_REPLY_MODE=${wanted} npm start to try it.`;
}

function addPanel(state) {
  const index = ++panelCount;
  const panel = document.getElementById('phone-template').content.firstElementChild.cloneNode(true);
  panel.state = { user: state.user || `user-${index}`, channel: state.channel || 'wechat', safeMode: !!state.safeMode };
  panel.version = -1;
  panel.setAttribute('aria-label', `Simulated user ${panel.state.user}`);
  for (const radio of panel.querySelectorAll('.channels input')) {
    radio.name = `channel-${index}`;
    radio.addEventListener('change', () => {
      panel.state.channel = radio.value;
      applyChannel(panel);
      savePanels();
    });
  }
  const user = panel.querySelector('.user');
  user.value = panel.state.user;
  user.addEventListener('change', () => {
    if (!user.checkValidity()) return;
    panel.state.user = user.value;
    panel.setAttribute('aria-label', `Simulated user ${panel.state.user}`);
    applyChannel(panel);
    savePanels();
  });
  const safe = panel.querySelector('.safe-mode');
  safe.checked = panel.state.safeMode;
  safe.addEventListener('change', () => {
    panel.state.safeMode = safe.checked;
    savePanels();
  });
  const replyMode = panel.querySelector('.reply-mode');
  if (config && config.wechat) {
    replyMode.value = config.wechat.replyMode;
    safe.disabled = !config.wechat.safeMode;
  }
  replyMode.addEventListener('change', () => modeNote(panel));
  modeNote(panel);
  panel.querySelector('.composer').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = panel.querySelector('.message');
    const text = input.value.trim();
    if (text === '') return;
    input.value = '';
    try {
      await api('/api/send', { channel: panel.state.channel, user: panel.state.user, text, safeMode: panel.state.safeMode });
    } catch (err) {
      alert(`Could not send: ${err.message}`);
    }
    poll(panel);
  });
  for (const media of ['image', 'voice']) {
    panel.querySelector(`.send-${media}`).addEventListener('click', async () => {
      try {
        await api('/api/send', { channel: panel.state.channel, user: panel.state.user, media, safeMode: panel.state.safeMode });
      } catch (err) {
        alert(`Could not send: ${err.message}`);
      }
      poll(panel);
    });
  }
  const windowClosed = panel.querySelector('.window-closed');
  windowClosed.title = 'Pretend 24 h have passed since this user wrote: free-form answers fail (131047) and the re-engagement template is sent';
  windowClosed.addEventListener('change', () => api('/api/window', { user: panel.state.user, closed: windowClosed.checked }).then(() => poll(panel)));
  panel.querySelector('.hangup').addEventListener('click', () => api('/api/hangup', { user: panel.state.user }).then(() => poll(panel)));
  panel.querySelector('.remove').addEventListener('click', () => {
    panel.remove();
    savePanels();
  });
  document.getElementById('phones').append(panel);
  applyChannel(panel);
  savePanels();
  poll(panel);
}

async function poll(panel) {
  if (!panel.isConnected) return;
  try {
    const conv = await api(`/api/conversation?channel=${panel.state.channel}&user=${encodeURIComponent(panel.state.user)}`);
    // A poll that left before the user or channel changed answers for the old one.
    if (conv.channel !== panel.state.channel || conv.user !== panel.state.user) return;
    if (conv.version !== panel.version) {
      panel.version = conv.version;
      render(panel, conv);
    }
  } catch {
    // the stack is restarting: keep polling
  }
}

async function start() {
  const status = document.getElementById('status');
  for (;;) {
    try {
      config = await api('/api/config');
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  const enabled = Object.entries(config.channels).filter(([, on]) => on).map(([name]) => CHANNEL_NAMES[name]);
  status.textContent = `Gateway ${config.gatewayUrl} · LLM: ${config.llmProvider} · channels: ${enabled.join(', ')}`;
  let saved = [];
  try {
    saved = JSON.parse(localStorage.getItem(STORE_KEY) || '[]');
  } catch {
    saved = [];
  }
  if (!Array.isArray(saved) || saved.length === 0) saved = [{}];
  for (const state of saved) addPanel(state);
  document.getElementById('add-user').addEventListener('click', () => addPanel({}));
  setInterval(() => document.querySelectorAll('.phone').forEach(poll), 400);
}

start();
