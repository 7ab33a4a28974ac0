// Live updates for the result page: a WebSocket to /ws on this host,
// reconnected with backoff whenever it drops. No framework, no other host.
(() => {
  'use strict';

  // The same rules as contract::Tally (crates/contract/src/tally.rs): a = round(100·a/(a+b)) (half
  // up, in exact integer arithmetic), b = 100 − a, 50/50 with no votes.
  const view = (a, b) => {
    const total = a + b;
    const pa = total === 0 ? 50 : Math.floor((200 * a + total) / (2 * total));
    return {
      a: pa,
      b: 100 - pa,
      aLabel: `${pa}.0%`,
      bLabel: `${100 - pa}.0%`,
      votes: total === 0 ? 'No votes yet' : total === 1 ? '1 vote' : `${total} votes`,
    };
  };
  window.resultView = view;

  const $ = (id) => document.getElementById(id);
  const isCount = (n) => Number.isSafeInteger(n) && n >= 0;

  const show = (tally) => {
    const v = view(tally.a, tally.b);
    $('bar-a').style.width = `${v.a}%`;
    $('bar-b').style.width = `${v.b}%`;
    $('percent-a').textContent = v.aLabel;
    $('percent-b').textContent = v.bLabel;
    $('votes').textContent = v.votes;
  };

  const setLive = (live) => {
    const status = $('status');
    status.textContent = live ? '' : 'Reconnecting…';
    status.hidden = live;
  };

  let failures = 0;
  const connect = () => {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(`${scheme}//${location.host}/ws`);
    socket.onmessage = (event) => {
      let tally;
      try { tally = JSON.parse(event.data); } catch { return; }
      if (!tally || !isCount(tally.a) || !isCount(tally.b)) return;
      failures = 0;
      setLive(true);
      show(tally);
    };
    socket.onclose = () => {
      setLive(false);
      // 250 ms doubling to 5 s, with jitter so pages do not return in lockstep.
      const delay = Math.min(5000, 250 * 2 ** failures++);
      setTimeout(connect, delay / 2 + Math.random() * delay / 2);
    };
  };
  connect();
})();
