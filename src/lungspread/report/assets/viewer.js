/* lungspread report: 3D surface viewer and axial slice scroller.
 *
 * No libraries and no WebGL: a small software rasterizer on a 2D canvas (z-buffer, Gouraud
 * shading), so the report works offline in any browser, with or without a GPU. Lesions are
 * opaque; the lungs are drawn as a glassy shell (their nearest surface blended over what lies
 * behind it, more opaque at grazing angles so that their outline stays visible).
 *
 * Data comes from JSON script blocks (type application/json) written by lungspread:
 *   #mesh-data:  {meshes: [{name, label, kind, color: [r,g,b] (0..1), positions: base64
 *                 Float32 xyz (RAS mm), indices: base64 Uint32}], center: [x,y,z], radius}
 *   #slice-data: {images: [data URI], overlays: [data URI], z_mm: [], start, pixel_mm, size}
 */
(function () {
  "use strict";

  function readJSON(id) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    return JSON.parse(el.textContent);
  }

  function decodeBase64(text) {
    var bin = window.atob(text);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    return bytes.buffer;
  }

  /* ---------------------------------------------------------------- 3D viewer */

  // Rows of the view matrix: screen x (right), screen y (up), toward the viewer, in RAS.
  var VIEWS = {
    front: [[-1, 0, 0], [0, 0, 1], [0, 1, 0]],      // patient's right on the screen's left
    back: [[1, 0, 0], [0, 0, 1], [0, -1, 0]],
    right: [[0, 1, 0], [0, 0, 1], [1, 0, 0]],       // seen from the patient's right side
    left: [[0, -1, 0], [0, 0, 1], [-1, 0, 0]],
    top: [[-1, 0, 0], [0, 1, 0], [0, 0, 1]]         // seen from above, anterior up
  };

  function copyView(v) { return [v[0].slice(), v[1].slice(), v[2].slice()]; }

  function rotateView(view, axis, angle) {
    // Rotate the camera about a screen axis (0 = x, 1 = y): mixes the other two rows.
    var c = Math.cos(angle), s = Math.sin(angle);
    var a = axis === 0 ? 1 : 0, b = 2;
    var ra = view[a], rb = view[b];
    var na = [], nb = [];
    for (var i = 0; i < 3; i++) {
      na[i] = c * ra[i] + s * rb[i];
      nb[i] = -s * ra[i] + c * rb[i];
    }
    view[a] = na; view[b] = nb;
    return orthonormalize(view);
  }

  function orthonormalize(v) {
    var x = v[0], y = v[1];
    var nx = Math.hypot(x[0], x[1], x[2]);
    x = [x[0] / nx, x[1] / nx, x[2] / nx];
    var d = x[0] * y[0] + x[1] * y[1] + x[2] * y[2];
    y = [y[0] - d * x[0], y[1] - d * x[1], y[2] - d * x[2]];
    var ny = Math.hypot(y[0], y[1], y[2]);
    y = [y[0] / ny, y[1] / ny, y[2] / ny];
    var z = [x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0]];
    return [x, y, z];
  }

  function prepareMesh(m, center) {
    var pos = new Float32Array(decodeBase64(m.positions));
    var idx = new Uint32Array(decodeBase64(m.indices));
    var n = pos.length / 3;
    for (var i = 0; i < n; i++) {
      pos[3 * i] -= center[0]; pos[3 * i + 1] -= center[1]; pos[3 * i + 2] -= center[2];
    }
    var nrm = new Float32Array(pos.length);
    for (var t = 0; t < idx.length; t += 3) {
      var a = 3 * idx[t], b = 3 * idx[t + 1], c = 3 * idx[t + 2];
      var ux = pos[b] - pos[a], uy = pos[b + 1] - pos[a + 1], uz = pos[b + 2] - pos[a + 2];
      var vx = pos[c] - pos[a], vy = pos[c + 1] - pos[a + 1], vz = pos[c + 2] - pos[a + 2];
      var fx = uy * vz - uz * vy, fy = uz * vx - ux * vz, fz = ux * vy - uy * vx;
      for (var k = 0; k < 3; k++) {
        var p = 3 * idx[t + k];
        nrm[p] += fx; nrm[p + 1] += fy; nrm[p + 2] += fz;
      }
    }
    for (var j = 0; j < n; j++) {
      var l = Math.hypot(nrm[3 * j], nrm[3 * j + 1], nrm[3 * j + 2]) || 1;
      nrm[3 * j] /= l; nrm[3 * j + 1] /= l; nrm[3 * j + 2] /= l;
    }
    var cx = 0, cy = 0, cz = 0;
    for (var q = 0; q < n; q++) { cx += pos[3 * q]; cy += pos[3 * q + 1]; cz += pos[3 * q + 2]; }
    return {
      name: m.name, label: m.label || "", kind: m.kind, color: m.color, visible: true,
      pos: pos, idx: idx, nrm: nrm, centroid: n ? [cx / n, cy / n, cz / n] : [0, 0, 0]
    };
  }

  function Viewer(canvas, data) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.center = data.center;
    this.radius = data.radius || 100;
    this.meshes = data.meshes.map(function (m) { return prepareMesh(m, data.center); });
    this.view = copyView(VIEWS.front);
    this.zoom = 1;
    this.showLungs = true;
    this.pending = false;
    this.background = [16, 19, 26];
    this.resize();
    this.bind();
  }

  Viewer.prototype.resize = function () {
    var ratio = Math.min(window.devicePixelRatio || 1, 2);
    var rect = this.canvas.getBoundingClientRect();
    var w = Math.max(50, Math.round((rect.width || 720) * ratio));
    var h = Math.max(50, Math.round((rect.height || 520) * ratio));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w; this.canvas.height = h;
    }
    this.ratio = ratio;
    var size = w * h;
    this.zLesion = new Float32Array(size);
    this.cLesion = new Uint8ClampedArray(size * 3);
    this.zLung = new Float32Array(size);
    this.cLung = new Uint8ClampedArray(size * 3);
    this.aLung = new Float32Array(size);
    this.image = this.ctx.createImageData(w, h);
  };

  Viewer.prototype.request = function () {
    var self = this;
    if (this.pending) { return; }
    this.pending = true;
    window.requestAnimationFrame(function () { self.pending = false; self.render(); });
  };

  Viewer.prototype.setView = function (name) {
    this.view = copyView(VIEWS[name] || VIEWS.front);
    this.zoom = 1;
    this.request();
  };

  Viewer.prototype.rotate = function (dxPixels, dyPixels) {
    var k = 0.01;
    if (dxPixels) { this.view = rotateView(this.view, 1, dxPixels * k); }
    if (dyPixels) { this.view = rotateView(this.view, 0, -dyPixels * k); }
    this.request();
  };

  Viewer.prototype.zoomBy = function (factor) {
    this.zoom = Math.min(20, Math.max(0.2, this.zoom * factor));
    this.request();
  };

  Viewer.prototype.bind = function () {
    var self = this, canvas = this.canvas, last = null;
    canvas.addEventListener("pointerdown", function (e) {
      last = [e.clientX, e.clientY];
      if (canvas.setPointerCapture) {
        try { canvas.setPointerCapture(e.pointerId); } catch (err) { /* synthetic pointer */ }
      }
      e.preventDefault();
    });
    canvas.addEventListener("pointermove", function (e) {
      if (!last) { return; }
      self.rotate(e.clientX - last[0], e.clientY - last[1]);
      last = [e.clientX, e.clientY];
    });
    function stop() { last = null; }
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    canvas.addEventListener("wheel", function (e) {
      e.preventDefault();
      self.zoomBy(Math.exp(-e.deltaY * 0.0015));
    }, { passive: false });
    canvas.addEventListener("dblclick", function () { self.setView("front"); });
    canvas.addEventListener("keydown", function (e) {
      var step = 20;
      if (e.key === "ArrowLeft") { self.rotate(-step, 0); }
      else if (e.key === "ArrowRight") { self.rotate(step, 0); }
      else if (e.key === "ArrowUp") { self.rotate(0, -step); }
      else if (e.key === "ArrowDown") { self.rotate(0, step); }
      else if (e.key === "+" || e.key === "=") { self.zoomBy(1.15); }
      else if (e.key === "-") { self.zoomBy(1 / 1.15); }
      else { return; }
      e.preventDefault();
    });
    window.addEventListener("resize", function () { self.resize(); self.request(); });
  };

  Viewer.prototype.project = function (x, y, z, out) {
    var v = this.view;
    out[0] = this.cx + this.scale * (v[0][0] * x + v[0][1] * y + v[0][2] * z);
    out[1] = this.cy - this.scale * (v[1][0] * x + v[1][1] * y + v[1][2] * z);
    out[2] = v[2][0] * x + v[2][1] * y + v[2][2] * z;
  };

  Viewer.prototype.rasterize = function (mesh, zbuf, cbuf, abuf) {
    var w = this.canvas.width, h = this.canvas.height, v = this.view;
    var pos = mesh.pos, nrm = mesh.nrm, idx = mesh.idx, n = pos.length / 3;
    var sx = new Float32Array(n), sy = new Float32Array(n), sz = new Float32Array(n);
    var shade = new Float32Array(n), facing = new Float32Array(n);
    var p = [0, 0, 0];
    // light from the upper left, slightly in front: fixed to the camera
    var lx = -0.35, ly = 0.45, lz = 0.82;
    var ll = Math.hypot(lx, ly, lz); lx /= ll; ly /= ll; lz /= ll;
    for (var i = 0; i < n; i++) {
      this.project(pos[3 * i], pos[3 * i + 1], pos[3 * i + 2], p);
      sx[i] = p[0]; sy[i] = p[1]; sz[i] = p[2];
      var ex = v[0][0] * nrm[3 * i] + v[0][1] * nrm[3 * i + 1] + v[0][2] * nrm[3 * i + 2];
      var ey = v[1][0] * nrm[3 * i] + v[1][1] * nrm[3 * i + 1] + v[1][2] * nrm[3 * i + 2];
      var ez = v[2][0] * nrm[3 * i] + v[2][1] * nrm[3 * i + 1] + v[2][2] * nrm[3 * i + 2];
      var diffuse = Math.abs(ex * lx + ey * ly + ez * lz);
      // Blinn-Phong highlight, half-vector between the light and the viewer (0, 0, 1)
      var hx = lx, hy = ly, hz = lz + 1, hl = Math.hypot(hx, hy, hz);
      var spec = Math.pow(Math.abs(ex * hx + ey * hy + ez * hz) / hl, 24);
      shade[i] = 0.28 + 0.72 * diffuse + 0.25 * spec;
      facing[i] = Math.abs(ez);
    }
    var col = mesh.color, cr = col[0] * 255, cg = col[1] * 255, cb = col[2] * 255;
    for (var t = 0; t < idx.length; t += 3) {
      var a = idx[t], b = idx[t + 1], c = idx[t + 2];
      var x0 = sx[a], y0 = sy[a], x1 = sx[b], y1 = sy[b], x2 = sx[c], y2 = sy[c];
      var area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0);
      if (area === 0) { continue; }
      var minX = Math.max(0, Math.floor(Math.min(x0, x1, x2)));
      var maxX = Math.min(w - 1, Math.ceil(Math.max(x0, x1, x2)));
      var minY = Math.max(0, Math.floor(Math.min(y0, y1, y2)));
      var maxY = Math.min(h - 1, Math.ceil(Math.max(y0, y1, y2)));
      if (minX > maxX || minY > maxY) { continue; }
      var inv = 1 / area;
      for (var yy = minY; yy <= maxY; yy++) {
        var py = yy + 0.5;
        for (var xx = minX; xx <= maxX; xx++) {
          var px = xx + 0.5;
          var w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) * inv;
          var w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) * inv;
          var w2 = 1 - w0 - w1;
          if (w0 < 0 || w1 < 0 || w2 < 0) { continue; }
          var depth = w0 * sz[a] + w1 * sz[b] + w2 * sz[c];
          var o = yy * w + xx;
          if (depth <= zbuf[o]) { continue; }
          zbuf[o] = depth;
          var s = w0 * shade[a] + w1 * shade[b] + w2 * shade[c];
          cbuf[3 * o] = cr * s; cbuf[3 * o + 1] = cg * s; cbuf[3 * o + 2] = cb * s;
          if (abuf) {
            var f = w0 * facing[a] + w1 * facing[b] + w2 * facing[c];
            abuf[o] = (1 - f) * (1 - f);  // 0 facing the viewer, 1 at grazing angles
          }
        }
      }
    }
  };

  Viewer.prototype.render = function () {
    var w = this.canvas.width, h = this.canvas.height;
    this.cx = w / 2; this.cy = h / 2;
    this.scale = this.zoom * 0.55 * Math.min(w, h) / this.radius;
    this.zLesion.fill(-Infinity); this.zLung.fill(-Infinity);
    var self = this;
    this.meshes.forEach(function (m) {
      if (!m.visible) { return; }
      if (m.kind === "lung") {
        if (self.showLungs) { self.rasterize(m, self.zLung, self.cLung, self.aLung); }
      } else {
        self.rasterize(m, self.zLesion, self.cLesion, null);
      }
    });
    var data = this.image.data, bg = this.background;
    for (var o = 0, n = w * h; o < n; o++) {
      var r, g, b;
      if (this.zLesion[o] > -Infinity) {
        r = this.cLesion[3 * o]; g = this.cLesion[3 * o + 1]; b = this.cLesion[3 * o + 2];
      } else { r = bg[0]; g = bg[1]; b = bg[2]; }
      if (this.zLung[o] > this.zLesion[o]) {
        // glass: thin where the lung faces the viewer, denser at its outline; thinner still
        // over a lesion so that lesions stay visible through the lung
        var rim = this.aLung[o];
        var al = this.zLesion[o] > -Infinity ? 0.16 + 0.4 * rim : 0.32 + 0.6 * rim;
        r = al * this.cLung[3 * o] + (1 - al) * r;
        g = al * this.cLung[3 * o + 1] + (1 - al) * g;
        b = al * this.cLung[3 * o + 2] + (1 - al) * b;
      }
      data[4 * o] = r; data[4 * o + 1] = g; data[4 * o + 2] = b; data[4 * o + 3] = 255;
    }
    this.ctx.putImageData(this.image, 0, 0);
    this.drawLabels();
    this.canvas.setAttribute("data-rendered", String((+this.canvas.getAttribute("data-rendered") || 0) + 1));
  };

  Viewer.prototype.drawLabels = function () {
    var ctx = this.ctx, p = [0, 0, 0], r = this.ratio;
    ctx.save();
    ctx.font = "bold " + Math.round(13 * r) + "px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    ctx.lineWidth = 3 * r;
    ctx.strokeStyle = "rgba(0,0,0,0.85)";
    ctx.fillStyle = "#ffffff";
    for (var i = 0; i < this.meshes.length; i++) {
      var m = this.meshes[i];
      if (m.kind !== "lesion" || !m.label || !m.visible) { continue; }
      this.project(m.centroid[0], m.centroid[1], m.centroid[2], p);
      var x = p[0] + 10 * r, y = p[1] - 10 * r;
      ctx.strokeText(m.label, x, y);
      ctx.fillText(m.label, x, y);
    }
    // orientation letters of the current view (nearest patient direction of each screen axis)
    var names = [["L", "R"], ["P", "A"], ["I", "S"]];
    function letter(vec, sign) {
      var k = 0;
      for (var j = 1; j < 3; j++) { if (Math.abs(vec[j]) > Math.abs(vec[k])) { k = j; } }
      return names[k][(vec[k] * sign > 0) ? 1 : 0];
    }
    var v = this.view, w = this.canvas.width, h = this.canvas.height;
    ctx.font = "bold " + Math.round(15 * r) + "px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillStyle = "#e8e8e8";
    ctx.fillText(letter(v[0], -1), 16 * r, h / 2);
    ctx.fillText(letter(v[0], 1), w - 16 * r, h / 2);
    ctx.fillText(letter(v[1], 1), w / 2, 16 * r);
    ctx.fillText(letter(v[1], -1), w / 2, h - 16 * r);
    ctx.restore();
  };

  function initViewer() {
    var data = readJSON("mesh-data");
    var canvas = document.getElementById("viewer-canvas");
    if (!data || !canvas) { return null; }
    var viewer = new Viewer(canvas, data);
    var buttons = document.querySelectorAll("[data-view]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function (e) {
        viewer.setView(e.currentTarget.getAttribute("data-view"));
      });
    }
    var lungs = document.getElementById("toggle-lungs");
    if (lungs) {
      lungs.addEventListener("change", function () {
        viewer.showLungs = lungs.checked; viewer.request();
      });
    }
    var zin = document.getElementById("zoom-in"), zout = document.getElementById("zoom-out");
    if (zin) { zin.addEventListener("click", function () { viewer.zoomBy(1.25); }); }
    if (zout) { zout.addEventListener("click", function () { viewer.zoomBy(0.8); }); }
    viewer.render();
    return viewer;
  }

  /* ---------------------------------------------------------------- slice scroller */

  function initSlices() {
    var data = readJSON("slice-data");
    var canvas = document.getElementById("slice-canvas");
    var slider = document.getElementById("slice-slider");
    var label = document.getElementById("slice-label");
    var outlines = document.getElementById("toggle-outlines");
    if (!data || !canvas || !slider || !data.images.length) { return null; }
    var ctx = canvas.getContext("2d");
    var w = data.size[0], h = data.size[1], upscale = 2;
    canvas.width = w * upscale; canvas.height = h * upscale;
    var cache = {};
    function load(uri, done) {
      if (cache[uri]) { if (cache[uri].complete) { done(cache[uri]); } else { cache[uri].addEventListener("load", function () { done(cache[uri]); }); } return; }
      var img = new Image();
      img.addEventListener("load", function () { done(img); });
      img.src = uri;
      cache[uri] = img;
    }
    var current = -1;
    function show(i) {
      i = Math.max(0, Math.min(data.images.length - 1, i));
      current = i;
      slider.value = String(i);
      label.textContent = "z = " + data.z_mm[i].toFixed(1) + " mm (slice " + (i + 1) + " of " + data.images.length + ")";
      load(data.images[i], function (img) {
        if (current !== i) { return; }
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
        if (!outlines || outlines.checked) {
          load(data.overlays[i], function (ov) {
            if (current !== i) { return; }
            ctx.imageSmoothingEnabled = false;
            ctx.drawImage(ov, 0, 0, canvas.width, canvas.height);
          });
        }
      });
    }
    slider.min = "0";
    slider.max = String(data.images.length - 1);
    slider.addEventListener("input", function () { show(parseInt(slider.value, 10)); });
    canvas.addEventListener("wheel", function (e) {
      e.preventDefault();
      show(current + (e.deltaY > 0 ? -1 : 1));
    }, { passive: false });
    if (outlines) { outlines.addEventListener("change", function () { show(current); }); }
    show(data.start || 0);
    return { show: show };
  }

  function start() {
    var viewer = null, slices = null;
    try {
      viewer = initViewer();
      slices = initSlices();
    } finally {
      window.lungspread = { viewer: viewer, slices: slices };
      document.body.setAttribute("data-ready", "1");
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
