// overrefusal viewer: model and prompt text is only ever set through textContent; images come from /api/image.
(function () {
  'use strict';
  var token = document.querySelector('meta[name="overrefusal-token"]').getAttribute('content');
  var LABELS = [['1_full_compliance', 'compliance'], ['2_full_refusal', 'full refusal'], ['3_partial_refusal', 'partial refusal']];
  var state = {offset: 0, limit: 50, total: 0, loads: 0};

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }

  function status(text) { document.getElementById('status').textContent = text; }

  function fill(id, values) {
    var select = document.getElementById(id);
    values.forEach(function (v) {
      var option = el('option', v);
      option.value = v;
      select.appendChild(option);
    });
  }

  function params() {
    var q = new URLSearchParams();
    ['model', 'category', 'label', 'verdict'].forEach(function (name) {
      var v = document.getElementById('f-' + name).value;
      if (v) { q.set(name, v); }
    });
    if (document.getElementById('f-disagree').checked) { q.set('disagree', '1'); }
    if (document.getElementById('f-gold').checked) { q.set('gold', '1'); }
    q.set('offset', String(state.offset));
    q.set('limit', String(state.limit));
    return q;
  }

  function verdictCell(r) {
    var td = el('td', null, 'verdicts');
    td.appendChild(el('span', 'run judge' + (r.judge ? ' (' + r.judge + ')' : '') + ': ' + r.verdict));
    td.appendChild(el('span', 'keyword check: ' + r.keyword));
    if (r.gold) { td.appendChild(el('span', 'gold: ' + r.gold, 'gold')); }
    return td;
  }

  function picture(image) {
    // an image of the run folder, served by this server; its name is text (alt and caption), never markup
    var link = el('a', null, 'thumb');
    link.href = image.src;
    link.target = '_blank';
    link.rel = 'noopener';
    var img = el('img');
    img.src = image.src;
    img.alt = image.name;
    img.title = image.name;
    img.loading = 'lazy';
    link.appendChild(img);
    return link;
  }

  function promptCell(r) {
    var td = el('td', null, 'text');
    if (r.prompt_image) { td.appendChild(picture(r.prompt_image)); }
    td.appendChild(el('span', r.prompt, 'prompt'));
    if (r.stimulus && r.stimulus !== r.category) { td.appendChild(el('span', 'stimulus: ' + r.stimulus, 'meta note')); }
    return td;
  }

  function answerCell(r) {
    // the final answer, then the reasoning collapsed beside it (both untrusted: textContent only)
    var td = el('td', null, 'text');
    if (r.sample) { td.appendChild(el('span', 'sample ' + (r.sample + 1), 'meta note')); }
    if (r.provider_refusal) { td.appendChild(el('span', 'refused by the provider (' + r.provider_refusal + ')', 'meta note')); }
    if (r.response_image) { td.appendChild(picture(r.response_image)); }
    td.appendChild(el('span', r.response, 'answer'));
    if (r.truncated_in_reasoning) { td.appendChild(el('span', '(truncated in reasoning: no final answer)', 'meta note')); }
    if (r.reasoning) {
      var details = el('details', null, 'reasoning');
      details.appendChild(el('summary', 'reasoning (' + r.reasoning.length + ' characters)'));
      details.appendChild(el('div', r.reasoning));
      td.appendChild(details);
    }
    return td;
  }

  function row(r) {
    var tr = el('tr');
    tr.setAttribute('data-row', String(r.row));
    if (r.disagree) { tr.className = 'disagree'; }
    tr.appendChild(el('td', r.model));
    tr.appendChild(el('td', r.category));
    tr.appendChild(el('td', r.label));
    tr.appendChild(promptCell(r));
    tr.appendChild(r.error ? el('td', 'error: ' + r.error, 'text err') : answerCell(r));
    tr.appendChild(verdictCell(r));
    var actions = el('td');
    if (!r.error && r.verdict !== 'missing') {
      LABELS.forEach(function (pair) {
        var button = el('button', pair[1], 'relabel' + (r.gold === pair[0] ? ' active' : ''));
        button.type = 'button';
        button.setAttribute('data-label', pair[0]);
        button.addEventListener('click', function () { relabel(r.row, pair[0], tr); });
        actions.appendChild(button);
      });
    }
    tr.appendChild(actions);
    return tr;
  }

  function load() {
    status('loading…');
    return fetch('/api/rows?' + params().toString(), {credentials: 'same-origin'})
      .then(function (res) { if (!res.ok) { throw new Error('HTTP ' + res.status); } return res.json(); })
      .then(function (page) {
        state.total = page.total;
        var body = document.querySelector('#rows tbody');
        body.replaceChildren.apply(body, page.rows.map(row));
        var last = Math.min(page.offset + page.rows.length, page.total);
        document.getElementById('page').textContent = (page.total ? page.offset + 1 : 0) + '–' + last + ' of ' + page.total;
        document.getElementById('prev').disabled = page.offset === 0;
        document.getElementById('next').disabled = last >= page.total;
        state.loads += 1;
        document.body.setAttribute('data-loaded', String(state.loads));
        status('');
      })
      .catch(function (err) { status('could not load rows: ' + err.message); });
  }

  function relabel(index, label, tr) {
    status('saving…');
    fetch('/api/relabel', {
      method: 'POST',
      credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'X-Overrefusal-Token': token},
      body: JSON.stringify({row: index, final_label: label})
    })
      .then(function (res) { if (!res.ok) { throw new Error('HTTP ' + res.status); } return res.json(); })
      .then(function (r) {
        tr.replaceWith(row(r));
        status('saved ' + label + ' for ' + r.model + ' / ' + r.prompt_id);
      })
      .catch(function (err) { status('could not save: ' + err.message); });
  }

  function refilter() { state.offset = 0; load(); }

  document.getElementById('prev').addEventListener('click', function () {
    state.offset = Math.max(0, state.offset - state.limit); load();
  });
  document.getElementById('next').addEventListener('click', function () {
    state.offset += state.limit; load();
  });
  document.getElementById('filters').addEventListener('change', refilter);

  fetch('/api/meta', {credentials: 'same-origin'})
    .then(function (res) { return res.json(); })
    .then(function (meta) {
      fill('f-model', meta.models);
      fill('f-category', meta.categories);
      fill('f-label', meta.labels);
      fill('f-verdict', meta.verdicts);
      document.getElementById('gold-file').textContent = meta.gold_file;
      document.getElementById('summary').textContent =
        meta.total + ' responses from ' + meta.runs.length + ' run(s): ' +
        meta.runs.map(function (r) { return r.model + ' on ' + r.benchmark; }).join(', ');
      return load();
    });
})();
