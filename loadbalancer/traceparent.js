// The vIP's W3C trace context (njs, loaded by lb-l7.j2; rendered into the lab's conf folder).
// A client's valid traceparent goes on to the web server unchanged, so the request joins the
// client's trace; a missing or malformed one is replaced by a new trace, sampled, whose id
// the access log and every answer's X-Trace-Id carry. The web server continues that trace.

var TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
var ZEROS = /^0+$/;

function valid(value) {
    var parts = TRACEPARENT.exec(value || '');
    if (!parts || parts[1] === 'ff' || (parts[1] === '00' && parts[5])) {
        return false;
    }
    return !ZEROS.test(parts[2]) && !ZEROS.test(parts[3]);
}

function randomHex(bytes) {
    var buffer = new Uint8Array(bytes);
    crypto.getRandomValues(buffer);
    var out = '';
    for (var i = 0; i < bytes; i++) {
        out += (buffer[i] < 16 ? '0' : '') + buffer[i].toString(16);
    }
    return ZEROS.test(out) ? randomHex(bytes) : out;
}

// $lb_traceparent: what the web server gets.
function traceparent(r) {
    var incoming = r.headersIn.traceparent;
    if (valid(incoming)) {
        return incoming;
    }
    return '00-' + randomHex(16) + '-' + randomHex(8) + '-01';
}

// $lb_trace_id: the trace of this request, for the log and the X-Trace-Id header.
function traceId(r) {
    return r.variables.lb_traceparent.split('-')[1];
}

export default { traceparent, traceId };
