// The manager console: signs in with the manager token, keeps the WebSocket (/v1/ws, protocol in
// schemas/src/ws.rs), rings with a fixed sound, answers over WebRTC (Opus) and runs the call.
// Plain JavaScript, no build step; served by the gateway from its binary.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'manager_token';

  // ---- state ---------------------------------------------------------------------------------
  let ws = null;
  let wsGeneration = 0; // bumps on sign-out so a stale socket's reconnect timer does nothing
  let reconnectDelay = 1000;
  let me = null; // hello: { manager_id, channel_id, presence, do_not_disturb }
  const rings = new Map(); // consultation_id -> ring message, in arrival order
  let call = null; // { consultationId, peer, pc, stream, muted, pendingCandidates, answered }
  let accepting = null; // consultation id whose accept is being prepared (mic + offer)
  const invites = new Map(); // consultation_id -> meet_invite message (another manager's call)
  let audioCtx = null;
  let ringer = null; // { oscillators, gain, timer }
  let analyser = null; // remote audio analysis (tone check, level)

  // ---- browser support -----------------------------------------------------------------------
  // In-app browsers (messengers, social apps) lack or break microphone/WebRTC support.
  const IN_APP = [
    [/KAKAOTALK/i, 'KakaoTalk'],
    [/Instagram/i, 'Instagram'],
    [/FBAN|FBAV|FB_IAB/, 'Facebook'],
    [/\bLine\//, 'LINE'],
    [/NAVER\(inapp/i, 'NAVER'],
  ];

  function unsupportedReason() {
    const ua = navigator.userAgent || '';
    for (const [re, name] of IN_APP) {
      if (re.test(ua)) {
        return {
          kind: 'in_app',
          title: `Open this page in your browser (not the ${name} app)`,
          text: `The ${name} in-app browser cannot use the microphone for calls. Open this ` +
            'page in Chrome, Edge, Safari or Firefox: use the app\'s menu → “Open in browser”, ' +
            'or copy the link below and paste it into your browser.',
        };
      }
    }
    // http://localhost and http://127.0.0.1 count as secure contexts; other plain-http hosts don't.
    if (!window.isSecureContext) {
      return {
        kind: 'insecure',
        title: 'This page must be opened over HTTPS',
        text: 'Browsers only allow the microphone on secure (https://) pages. Open the console ' +
          'through its https:// address.',
      };
    }
    const missing = [];
    if (!window.RTCPeerConnection) missing.push('WebRTC');
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) missing.push('microphone access');
    if (!window.WebSocket) missing.push('WebSocket');
    if (!(window.AudioContext || window.webkitAudioContext)) missing.push('Web Audio');
    if (missing.length) {
      return {
        kind: 'unsupported',
        title: 'This browser cannot take calls',
        text: `It lacks ${missing.join(', ')}. Use a current version of Chrome, Edge, Safari or Firefox.`,
      };
    }
    return null;
  }

  // ---- UI helpers ----------------------------------------------------------------------------
  function notice(text) {
    $('notice').textContent = text || '';
  }

  function setConnection(text) {
    $('connection').textContent = text;
  }

  function render() {
    let state = 'signed_out';
    if (me) {
      if (call) state = call.answered ? 'in_call' : 'connecting';
      else if (rings.size) state = 'ringing';
      else state = 'idle';
    }
    document.body.dataset.state = state;
    // Visible on the tab strip when the console is in a background tab.
    document.title = { ringing: '☎ Incoming call — Manager console', in_call: 'In call — Manager console' }[state]
      || 'Manager console';
    $('signin').hidden = !!me || !!$('unsupported').dataset.blocking;
    $('console').hidden = !me;
    $('idle').hidden = state !== 'idle';
    $('ringing').hidden = state !== 'ringing';
    $('incall').hidden = !(state === 'connecting' || state === 'in_call');
    if (me) {
      $('manager-id').textContent = me.manager_id;
      $('channel-id').textContent = me.channel_id;
      $('presence-online').checked = me.presence === 'online';
      $('dnd').checked = !!me.do_not_disturb;
    }
    if (state === 'ringing') {
      const r = currentRing();
      $('ring-caller').textContent = r.caller || 'Withheld number';
      const customer = $('ring-customer');
      customer.textContent = r.customer_name || 'New customer (no name yet)';
      const id = document.createElement('span');
      id.className = 'muted id';
      id.textContent = ` · ${r.customer_id}`;
      customer.appendChild(id);
      $('ring-dialled').textContent = r.dialled;
      $('ring-more').textContent = rings.size > 1 ? `${rings.size - 1} more call(s) waiting` : '';
      $('accept').disabled = accepting !== null;
    }
    if (call) {
      $('call-peer').textContent = call.peer;
      $('mute').setAttribute('aria-pressed', String(call.muted));
      $('mute').textContent = call.muted ? 'Unmute' : 'Mute';
    }
    updateRinger(state === 'ringing');
  }

  function currentRing() {
    return rings.values().next().value;
  }

  // ---- sign in / WebSocket -------------------------------------------------------------------
  function signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    connect(token);
  }

  function signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    wsGeneration += 1;
    if (ws) ws.close(1000, 'sign out');
    ws = null;
    endCallLocally('signed out');
    rings.clear();
    me = null;
    setConnection('Not signed in');
    render();
    $('token').value = '';
    $('token').focus();
  }

  function connect(token) {
    const generation = ++wsGeneration;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}/v1/ws?access_token=${encodeURIComponent(token)}`;
    setConnection('Connecting…');
    const socket = new WebSocket(url);
    ws = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      reconnectDelay = 1000;
    };
    socket.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      onServerMessage(msg);
    };
    socket.onclose = () => {
      if (generation !== wsGeneration) return;
      ws = null;
      if (!opened && !me) {
        // The upgrade was refused before any hello: almost always a wrong token.
        sessionStorage.removeItem(TOKEN_KEY);
        $('signin-error').textContent = 'Sign-in failed: check the token (or the gateway is not reachable).';
        setConnection('Not signed in');
        render();
        return;
      }
      // Lost connection: the gateway ends rings for a vanished session; our call (if any) lives
      // on the gateway until it ends. Reconnect with backoff.
      rings.clear();
      setConnection('Reconnecting…');
      render();
      const delay = reconnectDelay;
      reconnectDelay = Math.min(reconnectDelay * 2, 15000);
      setTimeout(() => {
        if (generation === wsGeneration) connect(token);
      }, delay);
    };
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(msg));
      return true;
    }
    notice('Not connected to the gateway; try again in a moment.');
    return false;
  }

  function onServerMessage(msg) {
    switch (msg.type) {
      case 'hello':
        me = {
          manager_id: msg.manager_id,
          channel_id: msg.channel_id,
          presence: msg.presence,
          do_not_disturb: msg.do_not_disturb,
        };
        $('signin-error').textContent = '';
        setConnection('Connected');
        break;
      case 'presence':
        if (me) {
          me.presence = msg.presence;
          me.do_not_disturb = msg.do_not_disturb;
        }
        break;
      case 'ring':
        rings.set(msg.consultation_id, msg);
        // Announced to screen readers (the notice is a live region).
        notice(soundReady()
          ? `Incoming call from ${msg.caller || 'a withheld number'}.`
          : 'A call is ringing. Press “Enable sound” so rings can be heard.');
        break;
      case 'ring_stopped': {
        const had = rings.delete(msg.consultation_id);
        if (had && !(call && call.consultationId === msg.consultation_id)) {
          $('last-call').textContent = `Ring stopped: ${ringStopText(msg.reason)}.`;
        }
        break;
      }
      case 'call_answered':
        onCallAnswered(msg);
        break;
      case 'outbound_started':
        // Our outgoing call got its consultation; the WebRTC answer comes with it.
        if (call && !call.consultationId) {
          call.consultationId = msg.consultation_id;
          onCallAnswered({ consultation_id: msg.consultation_id, sdp_answer: msg.sdp_answer });
          $('call-state').textContent = 'Calling…';
        }
        break;
      case 'outbound_ringing':
        if (call && call.consultationId === msg.consultation_id) {
          $('call-state').textContent = msg.early_media ? 'Ringing (carrier audio)…' : 'Ringing…';
        }
        break;
      case 'outbound_answered':
        if (call && call.consultationId === msg.consultation_id) {
          $('call-state').textContent = 'Connected';
          notice('The customer answered.');
        }
        break;
      case 'meet_invite':
        invites.set(msg.consultation_id, msg);
        notice(`${msg.invited_by} invites you into a call.`);
        renderInvites();
        break;
      case 'meet_invite_expired':
        if (invites.delete(msg.consultation_id)) {
          notice('An invite into a call expired.');
          renderInvites();
        }
        break;
      case 'meet_participants':
        if (call && call.consultationId === msg.consultation_id) {
          $('participants').textContent = (msg.manager_ids || []).join(', ');
        }
        break;
      case 'dtmf_received':
        if (call && call.consultationId === msg.consultation_id) {
          $('dtmf-received').textContent += msg.digit;
        }
        break;
      case 'call_ended':
        rings.delete(msg.consultation_id);
        if (invites.delete(msg.consultation_id)) renderInvites();
        if (call && call.consultationId === msg.consultation_id) {
          endCallLocally(msg.reason);
        } else if (accepting === msg.consultation_id) {
          accepting = null;
        }
        $('last-call').textContent = `Call ended: ${endReasonText(msg.reason)}.`;
        $('last-call').dataset.reason = msg.reason;
        break;
      case 'error':
        notice(`Gateway: ${msg.message} (${msg.code})`);
        // An accept that did not reach a live call leaves us with a half-open call: drop it.
        if (call && !call.answered && (msg.code === 'call.not_found' || msg.code === 'call.not_ringing')) {
          endCallLocally(msg.code);
        }
        break;
      default:
        break;
    }
    render();
  }

  const END_REASONS = {
    customer_hung_up: 'the caller hung up',
    manager_hung_up: 'you hung up',
    media_timeout: 'no audio from the caller for too long',
    media_failed: 'the audio connection failed',
    ack_timeout: 'the caller\'s network did not confirm the call',
    left: 'you left; the call goes on for the others',
    busy: 'the customer\'s line was busy',
    declined: 'the customer declined',
    no_answer: 'the customer did not answer',
    cancelled: 'you cancelled the call',
    failed: 'the call could not be placed',
  };

  function endReasonText(reason) {
    return END_REASONS[reason] ? `${END_REASONS[reason]} (${reason})` : reason;
  }

  function ringStopText(reason) {
    if (reason === 'answered') return 'answered elsewhere';
    if (reason === 'declined_by_you') return 'you declined';
    if (reason && typeof reason === 'object' && reason.missed) return `missed (${reason.missed})`;
    return String(reason);
  }

  // ---- sound ---------------------------------------------------------------------------------
  function soundReady() {
    return !!audioCtx && audioCtx.state === 'running';
  }

  function showSoundState() {
    const s = $('sound-state');
    if (!audioCtx) s.textContent = 'Sound: off — press Enable sound';
    else if (audioCtx.state === 'running') s.textContent = 'Sound: on';
    else s.textContent = `Sound: ${audioCtx.state} — press Enable sound`;
    s.dataset.state = audioCtx ? audioCtx.state : 'off';
    $('enable-sound').hidden = soundReady();
  }

  // Must run inside a user gesture (click, key) the first time: autoplay rules.
  function enableSound() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!audioCtx) {
      audioCtx = new Ctx();
      audioCtx.onstatechange = () => {
        showSoundState();
        render();
      };
    }
    if (audioCtx.state !== 'running') {
      audioCtx.resume().then(showSoundState, () => showSoundState());
    }
    showSoundState();
  }

  // The ring: a fixed two-tone (400 Hz + 450 Hz) double-ring cadence: 0.4 s on, 0.2 s off,
  // 0.4 s on, 2 s off. Not configurable.
  const RING_PERIOD = 3.0;
  const RING_BURSTS = [[0, 0.4], [0.6, 1.0]];

  function updateRinger(shouldRing) {
    if (shouldRing && !ringer && soundReady()) startRinger();
    else if (!shouldRing && ringer) stopRinger();
  }

  function startRinger() {
    const ctx = audioCtx;
    const gain = ctx.createGain();
    gain.gain.value = 0;
    gain.connect(ctx.destination);
    const oscillators = [400, 450].map((hz) => {
      const o = ctx.createOscillator();
      o.type = 'sine';
      o.frequency.value = hz;
      o.connect(gain);
      o.start();
      return o;
    });
    let next = ctx.currentTime + 0.05;
    const schedule = () => {
      // Keep about two periods scheduled ahead.
      while (next < ctx.currentTime + 2 * RING_PERIOD) {
        for (const [on, off] of RING_BURSTS) {
          gain.gain.setValueAtTime(0, next + on);
          gain.gain.linearRampToValueAtTime(0.15, next + on + 0.02);
          gain.gain.setValueAtTime(0.15, next + off - 0.02);
          gain.gain.linearRampToValueAtTime(0, next + off);
        }
        next += RING_PERIOD;
      }
    };
    schedule();
    ringer = { oscillators, gain, timer: setInterval(schedule, 1000) };
  }

  function stopRinger() {
    clearInterval(ringer.timer);
    const t = audioCtx.currentTime;
    ringer.gain.gain.cancelScheduledValues(t);
    ringer.gain.gain.setValueAtTime(0, t);
    for (const o of ringer.oscillators) o.stop(t + 0.05);
    const g = ringer.gain;
    setTimeout(() => g.disconnect(), 200);
    ringer = null;
  }

  // ---- microphone ----------------------------------------------------------------------------
  async function getMicrophone() {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      $('mic-denied').hidden = true;
      $('mic-state').textContent = 'Microphone: allowed';
      $('mic-state').dataset.state = 'granted';
      return stream;
    } catch (e) {
      if (e && (e.name === 'NotAllowedError' || e.name === 'SecurityError' || e.name === 'PermissionDeniedError')) {
        $('mic-state').textContent = 'Microphone: blocked';
        $('mic-state').dataset.state = 'denied';
        $('mic-denied-detail').textContent = `Browser said: ${e.name}${e.message ? ` — ${e.message}` : ''}`;
        $('mic-denied').hidden = false;
        $('mic-retry').focus();
      } else if (e && e.name === 'NotFoundError') {
        $('mic-state').textContent = 'Microphone: none found — connect one and retry';
        $('mic-state').dataset.state = 'missing';
      } else if (e && e.name === 'NotReadableError') {
        $('mic-state').textContent = 'Microphone: in use by another application';
        $('mic-state').dataset.state = 'busy';
      } else {
        $('mic-state').textContent = `Microphone: error (${e && e.name})`;
        $('mic-state').dataset.state = 'error';
      }
      return null;
    }
  }

  async function checkMicrophone() {
    const stream = await getMicrophone();
    if (stream) {
      for (const t of stream.getTracks()) t.stop();
      $('mic-state').textContent = 'Microphone: OK';
    }
  }

  // Retry after the manager allowed the microphone: accepts the ringing call if there is one.
  async function retryMicrophone() {
    if (rings.size && !call) await accept();
    else await checkMicrophone();
  }

  // ---- call ----------------------------------------------------------------------------------
  async function accept() {
    const ring = currentRing();
    if (!ring || call || accepting) return;
    enableSound(); // accept is a user gesture: a good moment to unlock audio
    accepting = ring.consultation_id;
    render();
    const stream = await getMicrophone();
    if (!stream) {
      accepting = null;
      render();
      return;
    }
    if (!rings.has(ring.consultation_id)) {
      // The ring stopped while the microphone prompt was open.
      for (const t of stream.getTracks()) t.stop();
      accepting = null;
      render();
      return;
    }
    accepting = null;
    call = newCall(ring.consultation_id, ring.caller || ring.customer_name || ring.customer_id, stream);
    render();
    await sendOffer(call, (sdp) => ({ type: 'accept', consultation_id: ring.consultation_id, sdp_offer: sdp }));
  }

  // The browser side of any call (an accepted ring, a joined meet, an outgoing call): the
  // microphone track, the caller's audio, connection state, trickled candidates.
  function newCall(consultationId, peerLabel, stream) {
    // Loopback/LAN: no STUN/TURN servers needed; host candidates in the offer.
    const pc = new RTCPeerConnection({ iceServers: [] });
    const c = {
      consultationId,
      peer: peerLabel,
      pc,
      stream,
      muted: false,
      answered: false,
      offerSent: false,
    };
    $('dtmf-received').textContent = '';
    $('participants').textContent = '';
    $('call-state').textContent = 'Connecting…';
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    pc.ontrack = (ev) => {
      const remote = ev.streams[0] || new MediaStream([ev.track]);
      const el = $('remote-audio');
      el.srcObject = remote;
      el.play().catch(() => notice('Press “Enable sound” to hear the caller.'));
      watchRemote(remote);
    };
    pc.onicecandidate = (ev) => {
      // Candidates found after the offer went out are trickled; the offer carries the rest.
      if (!call || call.pc !== pc || !call.offerSent || !call.consultationId) return;
      send({
        type: 'ice_candidate',
        consultation_id: call.consultationId,
        candidate: ev.candidate ? ev.candidate.candidate : '',
      });
    };
    pc.onconnectionstatechange = () => {
      if (!call || call.pc !== pc) return;
      const s = pc.connectionState;
      $('call-state').textContent = {
        new: 'Connecting…', connecting: 'Connecting…', connected: 'Connected',
        disconnected: 'Connection interrupted…', failed: 'Connection failed', closed: 'Closed',
      }[s] || s;
      $('call-state').dataset.state = s;
    };
    return c;
  }

  // Creates the offer, waits for host candidates, and sends `build(sdp)` to the gateway.
  async function sendOffer(c, build) {
    try {
      const offer = await c.pc.createOffer({ offerToReceiveAudio: true });
      await c.pc.setLocalDescription(offer);
      await iceGatheringComplete(c.pc, 2000);
      if (!call || call !== c) return;
      c.offerSent = true;
      send(build(c.pc.localDescription.sdp));
    } catch (e) {
      notice(`Could not start the call: ${e && e.message}`);
      endCallLocally('media_failed');
      render();
    }
  }

  // An outgoing call to a customer's number (the gateway opens a new consultation).
  async function callCustomer(number) {
    if (call || !number) return;
    enableSound();
    const stream = await getMicrophone();
    if (!stream) return;
    call = newCall(null, number, stream);
    render();
    $('call-state').textContent = 'Calling…';
    await sendOffer(call, (sdp) => ({ type: 'call_customer', customer_number: number, sdp_offer: sdp }));
  }

  // Joins a call another manager invited us into.
  async function joinMeet(consultationId) {
    const invite = invites.get(consultationId);
    if (call || !invite) return;
    invites.delete(consultationId);
    enableSound();
    const stream = await getMicrophone();
    if (!stream) return;
    call = newCall(consultationId, invite.caller || 'the caller', stream);
    renderInvites();
    render();
    await sendOffer(call, (sdp) => ({ type: 'join', consultation_id: consultationId, sdp_offer: sdp }));
  }

  function renderInvites() {
    const box = $('invites');
    box.textContent = '';
    for (const inv of invites.values()) {
      const p = document.createElement('p');
      p.textContent = `${inv.invited_by} invites you into a call with ${inv.caller || 'a customer'} `;
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'primary';
      b.textContent = 'Join';
      b.addEventListener('click', () => joinMeet(inv.consultation_id));
      p.appendChild(b);
      box.appendChild(p);
    }
  }

  function iceGatheringComplete(pc, timeoutMs) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        pc.removeEventListener('icegatheringstatechange', check);
        clearTimeout(timer);
        resolve();
      };
      const check = () => {
        if (pc.iceGatheringState === 'complete') done();
      };
      const timer = setTimeout(done, timeoutMs);
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  async function onCallAnswered(msg) {
    if (!call || call.consultationId !== msg.consultation_id) return;
    rings.delete(msg.consultation_id);
    try {
      await call.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp_answer });
      call.answered = true;
    } catch (e) {
      notice(`The gateway's answer was not usable: ${e && e.message}`);
      hangup();
    }
    render();
  }

  function decline() {
    const ring = currentRing();
    if (!ring) return;
    send({ type: 'decline', consultation_id: ring.consultation_id });
    // Hide it at once; ring_stopped confirms.
    rings.delete(ring.consultation_id);
    $('last-call').textContent = 'Declined.';
    render();
  }

  function toggleMute() {
    if (!call) return;
    call.muted = !call.muted;
    for (const t of call.stream.getAudioTracks()) t.enabled = !call.muted;
    notice(call.muted ? 'Microphone muted.' : 'Microphone on.');
    render();
  }

  function hangup() {
    if (!call) return;
    if (!call.consultationId) {
      // An outgoing call the gateway has not opened yet: nothing to hang up there.
      endCallLocally('cancelled');
      render();
      return;
    }
    send({ type: 'hangup', consultation_id: call.consultationId });
    $('call-state').textContent = 'Hanging up…';
  }

  // "Leave only me" keeps the call up for the other managers in it; when nobody is left the
  // gateway ends it (BYE to the carrier). "Leave for everyone" ends it at once.
  function leaveOnlyMe() {
    if (!call || !call.consultationId) return hangup();
    send({ type: 'leave', consultation_id: call.consultationId });
    $('call-state').textContent = 'Leaving…';
  }

  function leaveForEveryone() {
    hangup();
  }

  function sendDtmf(digit) {
    if (!call || !call.answered) return;
    send({ type: 'dtmf', consultation_id: call.consultationId, digit });
    notice(`Sent ${digit}`);
  }

  function endCallLocally(reason) {
    accepting = null;
    if (!call) return;
    const c = call;
    call = null;
    try {
      c.pc.close();
    } catch (e) { /* already closed */ }
    for (const t of c.stream.getTracks()) t.stop();
    $('remote-audio').srcObject = null;
    if (analyser) {
      analyser.source.disconnect();
      analyser = null;
    }
    $('last-call').dataset.reason = reason;
  }

  // ---- remote audio analysis (level; a Goertzel probe the browser test uses) ------------------
  function watchRemote(stream) {
    if (!audioCtx) return;
    try {
      const source = audioCtx.createMediaStreamSource(stream);
      const node = audioCtx.createAnalyser();
      node.fftSize = 2048;
      source.connect(node);
      analyser = { source, node };
    } catch (e) {
      analyser = null;
    }
  }

  // Share of the signal's power at `hz` in the latest analyser window (0..1; a pure tone ≈ 1).
  function toneShare(hz) {
    if (!analyser) return 0;
    const n = analyser.node.fftSize;
    const x = new Float32Array(n);
    analyser.node.getFloatTimeDomainData(x);
    const w = (2 * Math.PI * hz) / audioCtx.sampleRate;
    const coeff = 2 * Math.cos(w);
    let s1 = 0;
    let s2 = 0;
    let energy = 0;
    for (let i = 0; i < n; i++) {
      const s = x[i] + coeff * s1 - s2;
      s2 = s1;
      s1 = s;
      energy += x[i] * x[i];
    }
    if (energy < 1e-6) return 0;
    const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    return Math.min(1, (2 * power) / (n * energy));
  }

  // ---- keyboard shortcuts --------------------------------------------------------------------
  // e.code (physical key) so they work with any layout and with a Korean IME active.
  function onKeyDown(e) {
    if (!me) return;
    const mod = e.ctrlKey || e.metaKey;
    if (!mod) return;
    if (e.code === 'Space' && e.shiftKey) {
      // Ctrl+Shift+Space; on a Mac Cmd+Shift+D+Space (and Cmd+Shift+Space).
      e.preventDefault();
      if (!e.repeat) accept();
    } else if (e.code === 'KeyD' && e.metaKey && e.shiftKey && rings.size) {
      // Part of Cmd+Shift+D+Space: keep the browser's own Cmd+Shift+D away while ringing.
      e.preventDefault();
    } else if (e.code === 'KeyM' && e.shiftKey) {
      e.preventDefault();
      if (!e.repeat) toggleMute();
    } else if (e.code === 'KeyO' && e.shiftKey) {
      e.preventDefault();
      if (!e.repeat) leaveForEveryone();
    } else if (e.code === 'KeyO') {
      e.preventDefault();
      if (!e.repeat) leaveOnlyMe();
    }
  }

  // ---- start ---------------------------------------------------------------------------------
  function buildKeypad() {
    const keys = $('keys');
    for (const d of ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#']) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = d;
      b.dataset.digit = d;
      b.setAttribute('aria-label', `Send ${d === '*' ? 'star' : d === '#' ? 'pound' : d}`);
      b.addEventListener('click', () => sendDtmf(d));
      keys.appendChild(b);
    }
  }

  function start() {
    const blocked = unsupportedReason();
    if (blocked) {
      $('unsupported').hidden = false;
      $('unsupported').dataset.kind = blocked.kind;
      $('unsupported').dataset.blocking = '1';
      $('unsupported-title').textContent = blocked.title;
      $('unsupported-text').textContent = blocked.text;
      $('copy-link').addEventListener('click', async () => {
        try {
          await navigator.clipboard.writeText(location.href);
          $('copy-result').textContent = 'Copied.';
        } catch (e) {
          $('copy-result').textContent = location.href;
        }
      });
      render();
      return;
    }
    buildKeypad();
    $('signin-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const token = $('token').value.trim();
      if (!token) return;
      $('signin-error').textContent = '';
      signIn(token);
    });
    $('signout').addEventListener('click', signOut);
    $('presence-online').addEventListener('change', (e) => {
      send({ type: 'set_presence', presence: e.target.checked ? 'online' : 'offline' });
    });
    $('dnd').addEventListener('change', (e) => {
      send({ type: 'set_do_not_disturb', enabled: e.target.checked });
    });
    $('enable-sound').addEventListener('click', () => {
      enableSound();
      render();
    });
    $('check-mic').addEventListener('click', checkMicrophone);
    $('mic-retry').addEventListener('click', retryMicrophone);
    $('accept').addEventListener('click', accept);
    $('decline').addEventListener('click', decline);
    $('mute').addEventListener('click', toggleMute);
    $('leave-me').addEventListener('click', leaveOnlyMe);
    $('leave-all').addEventListener('click', leaveForEveryone);
    $('dial-form').addEventListener('submit', (e) => {
      e.preventDefault();
      callCustomer($('dial-number').value.trim());
    });
    $('invite-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const managerId = $('invite-manager').value.trim();
      if (call && call.consultationId && managerId) {
        send({ type: 'invite_manager', consultation_id: call.consultationId, manager_id: managerId });
        notice(`Invited ${managerId}.`);
      }
    });
    window.addEventListener('keydown', onKeyDown, true);
    // The microphone permission may change while the page is open (site settings).
    if (navigator.permissions && navigator.permissions.query) {
      navigator.permissions.query({ name: 'microphone' }).then((status) => {
        status.onchange = () => {
          // Allowed in the site settings while the guide is up: retry without another click.
          if (status.state === 'granted' && !$('mic-denied').hidden) retryMicrophone();
        };
      }, () => {});
    }
    showSoundState();
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) connect(saved);
    render();
    if (!saved) $('token').focus();
  }

  // Read-only hooks for the browser test and for support staff (devtools).
  window.managerConsole = {
    state: () => document.body.dataset.state,
    ringing: () => !!ringer,
    soundState: () => (audioCtx ? audioCtx.state : 'off'),
    peerConnection: () => (call ? call.pc : null),
    localTrackEnabled: () => (call ? call.stream.getAudioTracks().every((t) => t.enabled) : null),
    toneShare,
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
